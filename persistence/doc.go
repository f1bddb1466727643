// Package persistence defines where entities' journals and snapshots live:
// the Store contract, its record model and errors. Each backend lives in
// its own subpackage, and one conformance suite runs against all of them.
package persistence
