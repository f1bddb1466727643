package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/phasm-go/phasm/machine"
)

// Model tells the simulator how to drive a machine: which inputs arrive and
// what the outside world answers to tracked actions. Every random choice
// must come from the *rand.Rand passed in, so one seed reproduces a run.
type Model[S, I, A, R, U any] interface {
	// Input returns the next normal input and the index of the entity it is
	// for (0 <= entity < w.Entities()). It may read the world's states.
	Input(r *rand.Rand, w *World[S, I, A, R, U]) (entity int, in I)
	// Result returns what executing tracked action a of entity e yields
	// (success, or a domain failure such as a declined card).
	Result(r *rand.Rand, e int, a machine.Tracked[A]) R
	// Failure returns the terminal failure result the runtime delivers when
	// it gives up on a (retries exhausted or no answer before the timeout).
	Failure(a machine.Tracked[A]) R
}

// Router is implemented by models whose machines talk to each other: an
// entity-to-entity action is delivered as an input to another entity (with
// the action's idempotency key as request ID) and completes with that
// entity's reply. The runtime retries such deliveries until a reply comes,
// so the simulator never gives up on them.
type Router[I, A, R any] interface {
	// Route reports whether a is an entity-to-entity action and, if so, the
	// target entity and the input to deliver.
	Route(from int, a machine.Tracked[A]) (to int, in I, ok bool)
	// Reply turns the target's reply (nil when it accepted) into the result
	// the sender receives.
	Reply(a machine.Tracked[A], err error) R
}

// Invariants is implemented by machines (or models) that check their state;
// the simulator calls it after every step, success or failure.
type Invariants[S any] interface {
	Invariants(s *S) error
}

// EntityChecker is implemented by models that check one entity's state
// after each of its steps, knowing its index.
type EntityChecker[S any] interface {
	CheckEntity(e int, s *S) error
}

// WorldChecker is implemented by models with invariants across entities
// (money conserved); called after every step.
type WorldChecker[S, I, A, R, U any] interface {
	CheckWorld(w *World[S, I, A, R, U]) error
}

// FinalChecker is implemented by models with properties that must hold once
// the run has quiesced (every transfer settled).
type FinalChecker[S, I, A, R, U any] interface {
	CheckFinal(w *World[S, I, A, R, U]) error
}

// Observer is implemented by models that keep a history of what each
// entity accepted, for checks a state cannot express.
type Observer[I, R any] interface {
	Observe(e int, in machine.Input[I, R], out machine.Outcome)
}

// Checks selects the automatic checks. The zero value of Config.Checks
// means AllChecks.
type Checks uint8

// The automatic checks.
const (
	// CheckDeterminism re-runs every step from the prior state and compares
	// state, actions and error byte for byte.
	CheckDeterminism Checks = 1 << iota
	// CheckAtomicity fails a rejection that mutated the state first.
	CheckAtomicity
	// CheckRestore injects crashes and checks recovery: the reloaded state,
	// Restore's purity, and that it re-emits exactly the outstanding set.
	CheckRestore
	// CheckCompletions fails a completion that changes nothing, and action
	// IDs reused in an entity's life.
	CheckCompletions
	// AllChecks is every automatic check.
	AllChecks = CheckDeterminism | CheckAtomicity | CheckRestore | CheckCompletions
)

// Faults are the simulator's fault probabilities, drawn from the seed.
type Faults struct {
	// CrashProb is the chance, per step, that a random entity crashes: its
	// live state and in-flight actions are discarded and it is reloaded
	// from its durable snapshot and journal. Needs CheckRestore.
	CrashProb float64
	// DelayMaxSteps delays each result by 0..DelayMaxSteps steps, which
	// also reorders results.
	DelayMaxSteps int
	// DuplicateProb is the chance a result is delivered a second time,
	// with an independently generated result.
	DuplicateProb float64
	// FailProb is the chance an action fails terminally (Model.Failure).
	FailProb float64
	// LoseProb is the chance a result never arrives: the runtime's timeout
	// then delivers Model.Failure after TimeoutSteps.
	LoseProb float64
	// TimeoutSteps is the simulated timeout for lost results (default 50).
	TimeoutSteps int
	// LateAfterCrashProb is the chance an in-flight result of a crashed
	// entity still arrives after it recovered.
	LateAfterCrashProb float64
	// RetryProb is the chance a step re-sends an earlier input of a client
	// with its request ID, which must be answered from the request window.
	RetryProb float64
	// RequestIDProb is the chance a generated input carries a request ID.
	RequestIDProb float64
	// ReadFailProb is the chance, per step of a database-backed entity
	// (machine.ViewState), that one of the step's keyspace reads fails: the
	// step must fail without changing the in-memory state or the keyspace,
	// and the input is then retried.
	ReadFailProb float64
}

// DefaultFaults is a demanding mix of every fault.
var DefaultFaults = Faults{
	CrashProb:          0.01,
	DelayMaxSteps:      20,
	DuplicateProb:      0.1,
	FailProb:           0.05,
	LoseProb:           0.02,
	TimeoutSteps:       50,
	LateAfterCrashProb: 0.3,
	RetryProb:          0.02,
	RequestIDProb:      0.3,
}

// Config is one simulation campaign: a fixed list of seeds, each run for a
// fixed number of steps. Runs are counted in steps, never in time, so
// "N operations verified" is reproducible.
type Config struct {
	// Seeds to run, in order.
	Seeds []uint64
	// Steps is the number of operations (inputs and completions applied)
	// in each seed's safety phase.
	Steps int
	// Entities is the number of entities (default 1).
	Entities int
	// Faults to inject.
	Faults Faults
	// Checks to run (zero means AllChecks). InvariantsOnly overrides it.
	Checks Checks
	// InvariantsOnly turns every automatic check (and crash injection) off,
	// leaving the user's invariants: the fast mode.
	InvariantsOnly bool
	// SnapshotEveryRecords snapshots an entity's durable copy after this
	// many journal records (default 64).
	SnapshotEveryRecords int
	// TimeStepMax advances the simulated clock by up to this much per step
	// (default one second). The clock starts at Start (default 2026-01-05,
	// a Monday, 00:00 UTC).
	TimeStepMax time.Duration
	Start       time.Time
	// DeliverProb is the chance a step delivers a due result rather than
	// generate a new input when both are possible (default 0.6).
	DeliverProb float64
	// LivenessSteps bounds the quiescence phase after the safety phase, in
	// which no new inputs arrive and faults stop (default 10*Steps+10000).
	LivenessSteps int
	// ShrinkRuns bounds the replays spent shrinking a failure (default 400).
	ShrinkRuns int
	// EntityID names entity i (default "e<i>").
	EntityID func(i int) string
}

// Sim runs a machine kind against a model.
type Sim[S, I, A, R, U any] struct {
	kind   *machine.Kind[S, I, A, R, U]
	model  Model[S, I, A, R, U]
	cfg    Config
	checks Checks
	ids    []string
}

// New validates cfg and returns a simulator. Every configuration problem is
// reported at once.
func New[S, I, A, R, U any](kind *machine.Kind[S, I, A, R, U], model Model[S, I, A, R, U], cfg Config) (*Sim[S, I, A, R, U], error) {
	var problems []error
	bad := func(format string, args ...any) {
		problems = append(problems, fmt.Errorf("sim: invalid config: "+format, args...))
	}
	if kind == nil {
		bad("kind is nil")
	}
	if model == nil {
		bad("model is nil")
	}
	if len(cfg.Seeds) == 0 {
		bad("no seeds")
	}
	if cfg.Steps <= 0 {
		bad("Steps is %d, must be positive", cfg.Steps)
	}
	if cfg.Entities < 0 {
		bad("Entities is %d", cfg.Entities)
	}
	f := cfg.Faults
	for _, p := range []struct {
		name string
		v    float64
	}{
		{"CrashProb", f.CrashProb}, {"DuplicateProb", f.DuplicateProb}, {"FailProb", f.FailProb},
		{"LoseProb", f.LoseProb}, {"LateAfterCrashProb", f.LateAfterCrashProb},
		{"RetryProb", f.RetryProb}, {"RequestIDProb", f.RequestIDProb}, {"DeliverProb", cfg.DeliverProb},
	} {
		if p.v < 0 || p.v > 1 || p.v != p.v {
			bad("%s is %v, must be within [0, 1]", p.name, p.v)
		}
	}
	if f.DelayMaxSteps < 0 || f.TimeoutSteps < 0 || cfg.SnapshotEveryRecords < 0 || cfg.LivenessSteps < 0 || cfg.ShrinkRuns < 0 || cfg.TimeStepMax < 0 {
		bad("negative step count or duration")
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	if cfg.Entities == 0 {
		cfg.Entities = 1
	}
	if cfg.Faults.TimeoutSteps == 0 {
		cfg.Faults.TimeoutSteps = 50
	}
	if cfg.SnapshotEveryRecords == 0 {
		cfg.SnapshotEveryRecords = 64
	}
	if cfg.TimeStepMax == 0 {
		cfg.TimeStepMax = time.Second
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	}
	if cfg.DeliverProb == 0 {
		cfg.DeliverProb = 0.6
	}
	if cfg.LivenessSteps == 0 {
		cfg.LivenessSteps = 10*cfg.Steps + 10000
	}
	if cfg.ShrinkRuns == 0 {
		cfg.ShrinkRuns = 400
	}
	s := &Sim[S, I, A, R, U]{kind: kind, model: model, cfg: cfg, checks: cfg.Checks}
	if s.checks == 0 {
		s.checks = AllChecks
	}
	if cfg.InvariantsOnly {
		s.checks = 0
	}
	if s.checks&CheckRestore == 0 {
		s.cfg.Faults.CrashProb = 0
	}
	s.ids = make([]string, cfg.Entities)
	for i := range s.ids {
		if cfg.EntityID != nil {
			s.ids[i] = cfg.EntityID(i)
		} else {
			s.ids[i] = fmt.Sprintf("e%d", i)
		}
	}
	return s, nil
}

// Config returns the simulator's configuration with defaults filled in.
func (s *Sim[S, I, A, R, U]) Config() Config { return s.cfg }

// RunAll runs every seed in order and returns the combined report, or the
// first failure (a *Failure).
func (s *Sim[S, I, A, R, U]) RunAll() (Report, error) {
	var total Report
	for _, seed := range s.cfg.Seeds {
		rep, err := s.Run(seed)
		total.Add(rep)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Run runs one seed: a safety phase of Config.Steps operations with faults,
// then a liveness phase without new inputs or faults that must bring every
// entity to rest. On a failed check it returns a *Failure carrying the
// seed, the step, the check, and a shrunk event sequence that still fails.
func (s *Sim[S, I, A, R, U]) Run(seed uint64) (Report, error) {
	w := s.newWorld(seed, false)
	ferr := w.run()
	rep := w.report
	rep.Seeds = 1
	if ferr == nil {
		return rep, nil
	}
	return rep, s.explain(seed, ferr)
}

// explain turns a check failure into a *Failure with a shrunk trace: the
// seed is re-run with recording on, and the recorded events are shrunk.
func (s *Sim[S, I, A, R, U]) explain(seed uint64, first *checkError) *Failure {
	f := &Failure{Seed: seed, Step: first.step, Entity: first.entity, Check: first.check, Err: first.err}
	w := s.newWorld(seed, true)
	again := w.run()
	if again == nil || again.check != first.check {
		f.Note = "the failure did not recur when the seed was re-run (hidden state outside the machine?); no trace"
		return f
	}
	trace := w.trace
	f.OriginalEvents = len(trace)
	shrunk, runs := shrink(trace, first.check, s.cfg.ShrinkRuns, func(t []Event[I, R]) *checkError {
		return s.replay(t)
	})
	f.ShrinkRuns = runs
	f.Trace = make([]string, len(shrunk))
	for i := range shrunk {
		f.Trace[i] = shrunk[i].String()
	}
	return f
}

// Replay applies a recorded event sequence (from a Failure's trace, or
// written by hand in a regression test) to fresh entities with every check
// on, and returns the first check failure.
func (s *Sim[S, I, A, R, U]) Replay(events []Event[I, R]) error {
	if cerr := s.replay(events); cerr != nil {
		return &Failure{Step: cerr.step, Entity: cerr.entity, Check: cerr.check, Err: cerr.err, Note: "replayed trace", Replayed: true}
	}
	return nil
}

func (s *Sim[S, I, A, R, U]) replay(events []Event[I, R]) *checkError {
	w := s.newWorld(0, false)
	w.replaying = true
	if cerr := w.init(); cerr != nil {
		return cerr
	}
	for i := range events {
		ev := events[i]
		if ev.Entity < 0 || ev.Entity >= len(w.ents) {
			continue
		}
		w.now = ev.Time
		var cerr *checkError
		switch ev.Kind {
		case EventCrash:
			cerr = w.crash(ev.Entity, ev.ReadFailAt)
		default:
			_, cerr = w.apply(&ev)
		}
		if cerr != nil {
			return cerr
		}
	}
	return nil
}
