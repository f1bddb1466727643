package sim

import (
	"fmt"
	"strings"
	"time"

	"github.com/phasm-go/phasm/machine"
)

// EventKind says what an event does.
type EventKind uint8

const (
	// EventInput delivers a normal input (a client's, or another entity's).
	EventInput EventKind = iota + 1
	// EventCompletion delivers the result of a tracked action.
	EventCompletion
	// EventCrash crashes an entity and recovers it from its durable copy.
	EventCrash
)

// Event is one thing that happened to one entity. A run's events, replayed
// in order with Sim.Replay, reproduce it; a Failure shows its shrunk events.
type Event[I, R any] struct {
	Kind      EventKind
	Entity    int
	Time      time.Time
	RequestID string
	Input     I                // EventInput
	ActionID  machine.ActionID // EventCompletion
	Result    R                // EventCompletion
	// Note says why the event happened ("duplicate result", "client retry").
	Note string
	// ReadFailAt, when positive, makes the step's ReadFailAt-th read of a
	// database-backed entity's keyspace fail; the input is then retried.
	ReadFailAt int
}

// String renders the event for a failure report.
func (ev Event[I, R]) String() string {
	var b strings.Builder
	switch ev.Kind {
	case EventInput:
		fmt.Fprintf(&b, "entity %d: input %+v", ev.Entity, ev.Input)
		if ev.RequestID != "" {
			fmt.Fprintf(&b, " (request %s)", ev.RequestID)
		}
	case EventCompletion:
		fmt.Fprintf(&b, "entity %d: completion of action %d: %+v", ev.Entity, ev.ActionID, ev.Result)
	case EventCrash:
		fmt.Fprintf(&b, "entity %d: crash and recover", ev.Entity)
		if ev.ReadFailAt > 0 {
			fmt.Fprintf(&b, " [keyspace read %d of the recovery fails, then retried]", ev.ReadFailAt)
			ev.ReadFailAt = 0
		}
	default:
		fmt.Fprintf(&b, "entity %d: unknown event kind %d", ev.Entity, ev.Kind)
	}
	if ev.Note != "" {
		fmt.Fprintf(&b, " [%s]", ev.Note)
	}
	if ev.ReadFailAt > 0 {
		fmt.Fprintf(&b, " [keyspace read %d fails, then retried]", ev.ReadFailAt)
	}
	return b.String()
}

// Failure is a failed check: which seed, at which step, which check, why,
// and a shrunk sequence of events that still fails the same check.
type Failure struct {
	Seed   uint64
	Step   int
	Entity int
	// Check names the failed check: "invariant", "world-invariant",
	// "final", "determinism", "atomicity", "restore", "recovery",
	// "completion-unchanged", "action-id", "request-window", "panic",
	// "liveness", "driver", "encoding", "snapshot" or "model".
	Check string
	Err   error
	// Trace is the shrunk event sequence, rendered; OriginalEvents is how
	// many events the failing run had before shrinking.
	Trace          []string
	OriginalEvents int
	ShrinkRuns     int
	Note           string
	// Replayed marks a failure of Sim.Replay: it has no seed.
	Replayed bool
}

// Error implements the error interface.
func (f *Failure) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sim: check %q failed at step %d (seed %d, entity %d): %v", f.Check, f.Step, f.Seed, f.Entity, f.Err)
	if f.Note != "" {
		fmt.Fprintf(&b, "\n  note: %s", f.Note)
	}
	if len(f.Trace) > 0 {
		fmt.Fprintf(&b, "\n  shrunk from %d to %d events (%d replays); the events that still fail:", f.OriginalEvents, len(f.Trace), f.ShrinkRuns)
		for i, ev := range f.Trace {
			fmt.Fprintf(&b, "\n    %3d. %s", i+1, ev)
		}
	}
	if !f.Replayed {
		fmt.Fprintf(&b, "\n  re-run: Sim.Run(%d)", f.Seed)
	}
	return b.String()
}

// Unwrap returns the underlying check error.
func (f *Failure) Unwrap() error { return f.Err }

// Report counts what a run verified. Every operation counted in Operations
// went through every enabled check.
type Report struct {
	Seeds      int
	Operations uint64 // inputs and completions applied to drivers
	Inputs     uint64
	// Completions applied, including stale ones.
	Completions uint64
	Accepted    uint64
	Rejected    uint64
	// Duplicates: inputs answered from the request window.
	Duplicates uint64
	// Stale: completions dropped as not outstanding.
	Stale               uint64
	Crashes             uint64
	ReplayedRecords     uint64
	Snapshots           uint64
	DuplicateDeliveries uint64
	LateDeliveries      uint64
	Timeouts            uint64
	FailuresInjected    uint64
	ClientRetries       uint64
	EntityDeliveries    uint64
	// ReadFailures counts steps of database-backed entities failed by an
	// injected keyspace read failure (and retried); RecoveryReadFailures
	// counts recoveries after a crash failed that way (and retried).
	ReadFailures         uint64
	RecoveryReadFailures uint64
}

// Add accumulates o into r.
func (r *Report) Add(o Report) {
	r.Seeds += o.Seeds
	r.Operations += o.Operations
	r.Inputs += o.Inputs
	r.Completions += o.Completions
	r.Accepted += o.Accepted
	r.Rejected += o.Rejected
	r.Duplicates += o.Duplicates
	r.Stale += o.Stale
	r.Crashes += o.Crashes
	r.ReplayedRecords += o.ReplayedRecords
	r.Snapshots += o.Snapshots
	r.DuplicateDeliveries += o.DuplicateDeliveries
	r.LateDeliveries += o.LateDeliveries
	r.Timeouts += o.Timeouts
	r.FailuresInjected += o.FailuresInjected
	r.ClientRetries += o.ClientRetries
	r.EntityDeliveries += o.EntityDeliveries
	r.ReadFailures += o.ReadFailures
	r.RecoveryReadFailures += o.RecoveryReadFailures
}

// String renders the counts on one line.
func (r Report) String() string {
	return fmt.Sprintf("%d seeds, %d operations (%d inputs, %d completions; %d accepted, %d rejected, %d duplicate requests, %d stale completions), %d crashes recovered (%d records replayed, %d snapshots), faults: %d duplicate results, %d late, %d timeouts, %d failures, %d client retries, %d entity deliveries, %d keyspace read failures (%d in recoveries)",
		r.Seeds, r.Operations, r.Inputs, r.Completions, r.Accepted, r.Rejected, r.Duplicates, r.Stale,
		r.Crashes, r.ReplayedRecords, r.Snapshots, r.DuplicateDeliveries, r.LateDeliveries, r.Timeouts,
		r.FailuresInjected, r.ClientRetries, r.EntityDeliveries, r.ReadFailures, r.RecoveryReadFailures)
}

// Summary is the line suites print: "verified N operations in T", which
// tools parse, followed by the counts.
func (r Report) Summary(elapsed time.Duration) string {
	return fmt.Sprintf("verified %d operations in %s (%s)", r.Operations, elapsed.Round(time.Millisecond), r)
}

// shrink removes chunks of events while the same check still fails, in
// ever smaller chunks (delta debugging), within a budget of replays.
func shrink[I, R any](trace []Event[I, R], check string, budget int, fails func([]Event[I, R]) *checkError) ([]Event[I, R], int) {
	runs := 0
	cur := trace
	for chunk := len(cur) / 2; chunk >= 1 && runs < budget; {
		removed := false
		for start := 0; start < len(cur) && runs < budget; {
			end := min(start+chunk, len(cur))
			cand := make([]Event[I, R], 0, len(cur)-(end-start))
			cand = append(cand, cur[:start]...)
			cand = append(cand, cur[end:]...)
			runs++
			if cerr := fails(cand); cerr != nil && cerr.check == check {
				cur = cand
				removed = true
				continue
			}
			start = end
		}
		if !removed || chunk > len(cur)/2 {
			chunk /= 2
		}
	}
	return cur, runs
}
