// Package phasm is a runtime for deterministic, crash-recoverable state
// machines: entities written as pure State Transition Functions, made
// durable, distributed over a cluster, and proven with seeded simulation.
//
// Start with package machine (the contract and its pure driver) and
// machine/sim (the simulator); the README has a tour.
package phasm
