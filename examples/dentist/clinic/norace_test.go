//go:build !race

package clinic_test

const raceEnabled = false

func scaled(steps int) int { return steps }
