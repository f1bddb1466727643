// Package examples holds the compiled code behind the pages in docs/: the
// machines, models and simulations those pages quote. Every Go snippet in
// docs/concepts.md, docs/rules.md, docs/simulation.md and
// docs/database-backed-state.md is an excerpt of a
// file in this folder, and TestSnippetsAreCompiled fails when one is not.
//
// The code lives in _test.go files (package examples_test) so that its
// Example functions run with `go test ./docs/...` and their // Output: lines
// are checked: the verdicts the pages print are the simulator's own.
package examples
