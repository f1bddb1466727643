//go:build !race

package account_test

// scaled returns step counts unchanged without the race detector.
func scaled(steps int) int { return steps }
