#!/usr/bin/env bash
# test.sh: the one command that runs every check, on a fresh machine.
#
# It installs what the tests need (when run as root and something is missing),
# then runs gofmt, go vet for amd64 and arm64, and the whole test suite with
# the race detector. Tests that need root or a missing tool skip with a message
# saying what is missing; under CI (CI=true) such a skip is a failure.
#
# The race detector needs cgo, so a C compiler (gcc). Without one (a non-root
# user on a machine without gcc) the tests run without -race and say so;
# under CI that is a failure too.
#
#   ./test.sh            everything
#   ./test.sh ./rings/   only some packages (setup and vet still run)
#   TEST_SH_PLAN=1 ./test.sh   print the go test command line and stop
set -euo pipefail
cd "$(dirname "$0")"

need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip       || need_pkgs+=(iproute2)
have ping     || need_pkgs+=(iputils-ping)
have curl     || need_pkgs+=(curl)
have iperf3   || need_pkgs+=(iperf3)
have tcpdump  || need_pkgs+=(tcpdump)
have gcc      || need_pkgs+=(gcc)
have qemu-system-x86_64 || need_pkgs+=(qemu-system-x86)
have xz       || need_pkgs+=(xz-utils)
have make     || need_pkgs+=(make)
have dnsmasq  || need_pkgs+=(dnsmasq-base)
[ -f /usr/include/linux/vfio.h ] || need_pkgs+=(linux-libc-dev)
if [ ${#need_pkgs[@]} -gt 0 ] && [ -z "${TEST_SH_PLAN:-}" ]; then
	if [ "$(id -u)" = 0 ] && have apt-get; then
		echo "test.sh: installing ${need_pkgs[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
	else
		echo "test.sh: missing ${need_pkgs[*]} (not root: tests that need them will skip)"
	fi
fi

pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)

# -race needs cgo; go disables cgo by itself when it finds no C compiler.
race=(-race)
cc=$(go env CC); cc=${cc%% *}
if [ "$(go env CGO_ENABLED)" != 1 ] || ! have "$cc"; then
	race=()
	echo "test.sh: cgo is unavailable (CGO_ENABLED=0, or no C compiler: go looks for $cc):" \
		"running the tests WITHOUT the race detector; install gcc (apt-get install gcc) to get it"
	if [ "${CI:-}" = true ] || [ "${CI:-}" = 1 ]; then
		echo "test.sh: CI needs the race detector"; exit 1
	fi
fi
test_cmd=(go test "${race[@]}" -count=1 -timeout 20m "${pkgs[@]}")
if [ -n "${TEST_SH_PLAN:-}" ]; then
	echo "${test_cmd[*]}"; exit 0
fi

echo "== gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
echo "== go vet (amd64)"
go vet ./...
echo "== go vet (arm64)"
GOARCH=arm64 go vet ./...
echo "== ${test_cmd[*]}"
"${test_cmd[@]}"

# Only on a full run: the full fault matrix, then a few seconds of fuzzing
# for each target that faces device-written bytes (go test above already
# ran their seeds and committed corpus; FUZZTIME=10m ./test.sh for longer).
if [ $# -eq 0 ]; then
	# The race run above did each fault on one profile with small
	# transfers; the full matrix (every fault, every profile, 16 MiB each
	# way) runs here, without the detector's tenfold slowdown.
	# Not by default yet. The 90 s TCP stalls after a recovery are fixed
	# (the Tx queue waits during a reset instead of dropping a window;
	# the stack's TCP uses SACK without RACK), and on a loaded shared
	# machine 4 of 5 full runs passed (45-200 s). But one failure was
	# the load's (a spurious MISS_TX_CMPL reset at load 22 pre-empted the
	# expected ADMIN_TO), and about 1 in 700 device-reset-request runs
	# under load both TCP directions stop for good: a gVisor receiver
	# deadlock (README, "One residual failure"; 1 of 720 in a loop at
	# load 10-32), several percent per full run: too often for a CI that
	# blocks everything when red. FULL_MATRIX=1 ./test.sh runs it.
	if [ -n "${FULL_MATRIX:-}" ]; then
		echo "== fault matrix under TCP"
		go test -count=1 -timeout 15m -run '^TestFaultMatrixUnderTCP$' ./link/enanic/
	fi
	echo "== fuzz (${FUZZTIME:-5s} per target)"
	# Go's fuzzing engine now and then ends a run that found nothing with
	# "context deadline exceeded" (its own -fuzztime deadline reached while
	# a worker was still busy): in 2 of 4 CI rehearsals on 2026-12-02, one
	# target each. A real failure always writes its input under
	# testdata/fuzz ("Failing input written to"); only the other kind is
	# run again, at most three times in all, and it says so.
	fuzz() {
		local log attempt
		log=$(mktemp)
		for attempt in 1 2 3; do
			if go test -run '^$' -fuzz "^$2\$" -fuzztime "${FUZZTIME:-5s}" -parallel 2 "$1" 2>&1 | tee "$log"; then
				rm -f "$log"
				return 0
			fi
			if [ "$attempt" -lt 3 ] && grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
				echo "test.sh: $2 stopped on the fuzzer's own deadline without a failing input; running it again"
				continue
			fi
			break
		done
		rm -f "$log"
		return 1
	}
	while read -r pkg target; do
		fuzz "$pkg" "$target"
	done <<'TARGETS'
./ena/ FuzzHostileDevice
./rings/ FuzzTxCompletions
./rings/ FuzzRxCompletions
./ena/spec/ FuzzDecodeACQEntry
./ena/spec/ FuzzDecodeAENQEntry
./ena/spec/ FuzzDecodeCompletions
TARGETS
fi
