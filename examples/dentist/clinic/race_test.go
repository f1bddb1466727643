//go:build race

package clinic_test

// raceEnabled: the race detector slows the single-threaded simulator about
// tenfold, so the suite runs a tenth of its steps.
const raceEnabled = true

func scaled(steps int) int { return max(steps/10, 500) }
