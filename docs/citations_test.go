package docs

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// notesPath is the protocol notes file, relative to this package.
const notesPath = "protocol.md"

// section is one heading of protocol.md with the text it owns, including the
// text of its subsections, and the numbered steps listed in that text.
type section struct {
	title string
	body  string
	steps map[int]bool
}

var (
	// numberedHeading matches "## 4. Admin queue" and "### 4.7 Command ...".
	numberedHeading = regexp.MustCompile(`^(#{2,4})\s+(\d+(?:\.\d+)*)\.?\s+(.*)$`)
	// namedHeading matches any other heading, e.g. "## Notation".
	namedHeading = regexp.MustCompile(`^(#{2,4})\s+(.*)$`)
	// stepLine matches a numbered list item: "3. Reset ..." or "   3. ...".
	stepLine = regexp.MustCompile(`^\s*(\d+)\.\s`)

	// citation matches "\u00a7" followed by a section number or a heading name.
	citation = regexp.MustCompile("\u00a7\\s?(\\d+(?:\\.\\d+)*|[A-Z][a-z]+)")
	// externalStandard is text right before a citation that makes it a
	// citation of a public standard (RFC 793 §3.1, PCI Local Bus spec 3.0 §6.2).
	externalStandard = regexp.MustCompile(`(RFC ?\d+|[Ss]pec(ification)? \d+(\.\d+)*)\s*$`)
	// outsideDocument is text right before a citation that names another
	// document (a file name or a known outside note), which a reader of the
	// repository cannot open.
	outsideDocument = regexp.MustCompile(`([\w./-]+\.(md|txt|pdf)|anchors|qemu-rig|fact sheet)\s*$`)
	// commentContinuation joins a comment that goes on in the next line.
	commentContinuation = regexp.MustCompile(`\s*\n\s*//\s*`)
	// qualifier forms after a citation: steps, a field or feature name, a
	// quoted phrase.
	stepsQualifier  = regexp.MustCompile(`^ steps? (\d+)(?:\s*(?:-|–|and|to)\s*(\d+))?`)
	nameQualifier   = regexp.MustCompile(`^ ([A-Z][A-Z0-9_]{2,})\b`)
	quotedQualifier = regexp.MustCompile(`^ "([^"]+)"`)
	// namedBefore is a protocol name written just before a citation, as in
	// "LINK_CHANGE event (\u00a75.2)" or "(SET_FEATURE MTU, \u00a74.8)".
	namedBefore = regexp.MustCompile(`\b([A-Z][A-Z0-9_]{2,})(?: [a-z]+)?(?: \(|, | )$`)
)

// parseNotes reads protocol.md into its sections, keyed by number ("4.7") or,
// for unnumbered headings, by title ("Notation").
func parseNotes(text string) map[string]*section {
	type open struct {
		level int
		sec   *section
	}
	sections := map[string]*section{}
	var stack []open
	for _, line := range strings.Split(text, "\n") {
		key, title, level := "", "", 0
		if m := numberedHeading.FindStringSubmatch(line); m != nil {
			key, title, level = m[2], m[3], len(m[1])
		} else if m := namedHeading.FindStringSubmatch(line); m != nil {
			title, level = m[2], len(m[1])
			key = strings.Fields(title)[0]
		}
		if level > 0 {
			for len(stack) > 0 && stack[len(stack)-1].level >= level {
				stack = stack[:len(stack)-1]
			}
			sec := &section{title: title, steps: map[int]bool{}}
			if _, dup := sections[key]; !dup {
				sections[key] = sec
			}
			stack = append(stack, open{level, sec})
		}
		for _, o := range stack {
			o.sec.body += line + "\n"
			if m := stepLine.FindStringSubmatch(line); m != nil {
				n, _ := strconv.Atoi(m[1])
				o.sec.steps[n] = true
			}
		}
	}
	return sections
}

// cited is one citation found in a Go file.
type cited struct {
	pos    string // file:line
	target string // "4.7" or "Notation"
	after  string // text after the citation, comment continuations joined
	before string // text before the citation on the same line
}

// findCitations returns the citations in one file's text, skipping those of
// public standards (RFCs, PCI specifications).
func findCitations(name, text string) []cited {
	var out []cited
	for _, loc := range citation.FindAllStringSubmatchIndex(text, -1) {
		lineStart := strings.LastIndexByte(text[:loc[0]], '\n') + 1
		before := text[lineStart:loc[0]]
		if externalStandard.MatchString(before) {
			continue
		}
		end := min(len(text), loc[1]+160)
		after := commentContinuation.ReplaceAllString(text[loc[1]:end], " ")
		line := strings.Count(text[:loc[0]], "\n") + 1
		out = append(out, cited{
			pos:    name + ":" + strconv.Itoa(line),
			target: text[loc[2]:loc[3]],
			after:  after,
			before: before,
		})
	}
	return out
}

// check returns why a citation does not resolve, or "" if it does.
func check(c cited, notes map[string]*section) string {
	if m := outsideDocument.FindStringSubmatch(c.before); m != nil && m[1] != "protocol.md" && m[1] != "docs/protocol.md" {
		return "cites a document outside the repository; cite docs/protocol.md or say it in words"
	}
	sec, ok := notes[c.target]
	if !ok {
		return "no heading " + c.target + " in docs/protocol.md"
	}
	// A protocol name just before the citation must belong to the cited
	// chapter (a loose check: the chapter, not the subsection, must name it).
	chapter, _, _ := strings.Cut(c.target, ".")
	if m := namedBefore.FindStringSubmatch(c.before); m != nil && isNumber(chapter) && mentions(notes, m[1]) && !strings.Contains(notes[chapter].body, m[1]) {
		return "chapter " + chapter + " does not mention " + m[1] + ", named just before the citation"
	}
	if m := stepsQualifier.FindStringSubmatch(c.after); m != nil {
		first, _ := strconv.Atoi(m[1])
		last := first
		if m[2] != "" {
			last, _ = strconv.Atoi(m[2])
		}
		for n := first; n <= last && n-first < 64; n++ {
			if !sec.steps[n] {
				return "section " + c.target + " has no step " + strconv.Itoa(n)
			}
		}
		return ""
	}
	if m := nameQualifier.FindStringSubmatch(c.after); m != nil {
		if !strings.Contains(sec.body, m[1]) {
			return "section " + c.target + " does not mention " + m[1]
		}
		return ""
	}
	if m := quotedQualifier.FindStringSubmatch(c.after); m != nil {
		want := strings.ToLower(strings.Join(strings.Fields(m[1]), " "))
		got := strings.ToLower(strings.Join(strings.Fields(sec.body), " "))
		if !strings.Contains(got, want) {
			return "section " + c.target + ` does not contain "` + m[1] + `"`
		}
	}
	return ""
}

// isNumber reports whether s is a section number rather than a heading name.
func isNumber(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}

// mentions reports whether the notes use name anywhere, which makes it a
// protocol name whose section can be checked (unlike TCP or CPU).
func mentions(notes map[string]*section, name string) bool {
	for _, sec := range notes {
		if strings.Contains(sec.body, name) {
			return true
		}
	}
	return false
}

// repoRoot is the directory holding go.mod, one level above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "go.mod"), "the docs package must sit directly under the module root")
	return root
}

// goFiles lists the repository's Go files, skipping hidden directories
// (.git, caches), testdata and vendor.
func goFiles(t *testing.T, root string) []string {
	return repoFiles(t, root, ".go")
}

// repoFiles lists the repository's files with one of the given suffixes,
// skipping hidden directories (.git, caches), testdata and vendor.
func repoFiles(t *testing.T, root string, suffixes ...string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		for _, suffix := range suffixes {
			if strings.HasSuffix(path, suffix) {
				files = append(files, path)
				break
			}
		}
		return nil
	})
	require.NoError(t, err)
	sort.Strings(files)
	return files
}

func loadNotes(t *testing.T) map[string]*section {
	t.Helper()
	text, err := os.ReadFile(notesPath)
	require.NoError(t, err, "docs/protocol.md is the target of every § citation")
	return parseNotes(string(text))
}

// TestCitationsResolve fails with one line per citation in the repository's Go
// code, assembly or Markdown (the notes included) that docs/protocol.md cannot
// answer.
func TestCitationsResolve(t *testing.T) {
	notes := loadNotes(t)
	root := repoRoot(t)
	var problems []string
	total := 0
	for _, path := range repoFiles(t, root, ".go", ".s", ".md") {
		text, err := os.ReadFile(path)
		require.NoError(t, err)
		rel, err := filepath.Rel(root, path)
		require.NoError(t, err)
		for _, c := range findCitations(filepath.ToSlash(rel), string(text)) {
			total++
			if why := check(c, notes); why != "" {
				problems = append(problems, c.pos+": \u00a7"+c.target+": "+why)
			}
		}
	}
	t.Logf("checked %d citations", total)
	require.NotZero(t, total, "no citations found: is the walk looking at the repository?")
	assert.Empty(t, problems, "citations that do not resolve in docs/protocol.md:\n%s", strings.Join(problems, "\n"))
}

// TestNotesNumbering checks the notes keep the section numbering the code
// relies on: §1 to §11 in order, each subsection under its parent.
func TestNotesNumbering(t *testing.T) {
	notes := loadNotes(t)
	for n := 1; n <= 11; n++ {
		assert.Contains(t, notes, strconv.Itoa(n), "top-level section %d", n)
	}
	for key := range notes {
		if i := strings.LastIndexByte(key, '.'); i > 0 {
			assert.Contains(t, notes, key[:i], "section %s has no parent heading", key)
		}
	}
	f, err := os.Open(notesPath)
	require.NoError(t, err)
	defer f.Close()
	var last []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := numberedHeading.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		var cur []int
		for _, p := range strings.Split(m[2], ".") {
			n, _ := strconv.Atoi(p)
			cur = append(cur, n)
		}
		assert.True(t, less(last, cur), "heading %s comes after %v", m[2], last)
		last = cur
	}
	require.NoError(t, sc.Err())
}

// less orders section numbers as 1 < 1.1 < 1.2 < 2.
func less(a, b []int) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

// TestNoOutsideReferences keeps comments free of pointers a reader of the
// repository cannot follow: issue numbers and notes kept outside it.
func TestNoOutsideReferences(t *testing.T) {
	forbidden := regexp.MustCompile(`(?i)\bissue ?#?\d|PLAN\.md|TODO\(issue|shared/spec|ena-protocol\.md|ena-sources\.md|qemu-rig\.md|anchors\.md|gvisor-integration\.md`)
	root := repoRoot(t)
	var problems []string
	for _, path := range goFiles(t, root) {
		if filepath.Dir(path) == filepath.Join(root, "docs") {
			continue // this file names the patterns it forbids
		}
		text, err := os.ReadFile(path)
		require.NoError(t, err)
		rel, _ := filepath.Rel(root, path)
		for i, line := range strings.Split(string(text), "\n") {
			if m := forbidden.FindString(line); m != "" {
				problems = append(problems, rel+":"+strconv.Itoa(i+1)+": "+m)
			}
		}
	}
	assert.Empty(t, problems, "references to issues or to notes outside the repository:\n%s", strings.Join(problems, "\n"))
}

// TestCitationParsing pins the forms of citation the code uses.
func TestCitationParsing(t *testing.T) {
	notes := parseNotes("## Notation\nle\n## 6. Init\n1. a\n2. b\n3. c\n### 6.1 Sub\nDEV_CTL here\n## 7. Next\n")
	cases := []struct {
		text string
		want []string // one verdict per citation: "" = resolves
	}{
		{"// reset (\u00a76 step 3).", []string{""}},
		{"// (\u00a76 steps 2-3, \u00a76.1 DEV_CTL)", []string{"", ""}},
		{"// (\u00a76 steps 2 and\n// 4)", []string{"section 6 has no step 4"}},
		{"// \u00a76.1 INTR_MASK", []string{"section 6.1 does not mention INTR_MASK"}},
		{"// \u00a76.1 \"dev_ctl\" and \u00a77.2.", []string{"", "no heading 7.2 in docs/protocol.md"}},
		{"// byte order (\u00a7 Notation).", []string{""}},
		{"// RFC 793 \u00a73.1 and PCI Local Bus spec 3.0 \u00a76.2", nil},
		{"// see qemu-rig.md \u00a71.5", []string{"cites a document outside the repository; cite docs/protocol.md or say it in words"}},
		{"// (\u00a76\u2013\u00a77)", []string{"", ""}},
		{"// (DEV_CTL, \u00a76.1) and DEV_CTL event (\u00a76) and TCP (\u00a77)", []string{"", "", ""}},
		{"// like a DEV_CTL write (\u00a77)", []string{"chapter 7 does not mention DEV_CTL, named just before the citation"}},
		{"// docs/protocol.md \u00a76 and ena-protocol.md \u00a76", []string{"", "cites a document outside the repository; cite docs/protocol.md or say it in words"}},
	}
	for _, tc := range cases {
		var got []string
		for _, c := range findCitations("x.go", tc.text) {
			got = append(got, check(c, notes))
		}
		assert.Equal(t, tc.want, got, "%q", tc.text)
	}
}

// TestPackagesPointAtNotes checks that every package whose code cites the
// notes says once, in its non-test files, where "§n.m" points.
func TestPackagesPointAtNotes(t *testing.T) {
	root := repoRoot(t)
	citing := map[string]bool{}
	pointing := map[string]bool{}
	for _, path := range goFiles(t, root) {
		dir, err := filepath.Rel(root, filepath.Dir(path))
		require.NoError(t, err)
		if dir == "docs" {
			continue
		}
		text, err := os.ReadFile(path)
		require.NoError(t, err)
		if len(findCitations(path, string(text))) > 0 {
			citing[dir] = true
		}
		if !strings.HasSuffix(path, "_test.go") && strings.Contains(string(text), "docs/protocol.md") {
			pointing[dir] = true
		}
	}
	var missing []string
	for dir := range citing {
		if !pointing[dir] {
			missing = append(missing, dir)
		}
	}
	sort.Strings(missing)
	assert.Empty(t, missing, "packages citing \u00a7 sections whose package doc does not say they refer to docs/protocol.md")
}
