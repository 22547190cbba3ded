// Package docs holds the project's protocol notes (protocol.md) and the test
// that keeps the code's protocol citations honest: every "§n" or "§n.m" in a
// Go comment or string of this repository names a heading of
// docs/protocol.md, and a step, field name or quoted phrase written after the
// citation can be found in that section. The package has no Go API.
package docs
