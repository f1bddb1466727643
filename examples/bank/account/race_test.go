//go:build race

package account_test

// scaled shrinks simulation step counts under the race detector, which
// slows the single-threaded simulator about tenfold.
func scaled(steps int) int { return max(steps/10, 500) }
