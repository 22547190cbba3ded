#include "textflag.h"

// func Load32(addr unsafe.Pointer) uint32
TEXT ·Load32(SB), NOSPLIT, $0-12
	MOVD addr+0(FP), R0
	MOVWU (R0), R1
	MOVW R1, ret+8(FP)
	RET

// func Store32(addr unsafe.Pointer, val uint32)
TEXT ·Store32(SB), NOSPLIT, $0-12
	MOVD addr+0(FP), R0
	MOVWU val+8(FP), R1
	MOVW R1, (R0)
	RET

// func Copy64(dst, src unsafe.Pointer, words int)
TEXT ·Copy64(SB), NOSPLIT, $0-24
	MOVD dst+0(FP), R0
	MOVD src+8(FP), R1
	MOVD words+16(FP), R2
	CMP $0, R2
	BLE done
loop:
	MOVD.P 8(R1), R3
	MOVD.P R3, 8(R0)
	SUBS $1, R2, R2
	BNE loop
done:
	RET

// func StoreBarrier()
TEXT ·StoreBarrier(SB), NOSPLIT, $0-0
	DMB $0x2 // OSHST
	RET

// func Flush()
TEXT ·Flush(SB), NOSPLIT, $0-0
	DSB $0xe // ST
	RET
