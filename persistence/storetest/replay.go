package storetest

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/phasm-go/phasm/machine"
	"github.com/phasm-go/phasm/persistence"
)

// tally is the suite's tiny machine: it adds numbers, rejects zero, and
// tracks a "report" action every tenth accepted input until it completes,
// so it exercises inputs, rejections, completions and the pending index.
type tally struct{}

type tallyState struct {
	Sum, Count uint64
	Next       machine.ActionID
	Reporting  bool
}

type tallyInput struct{ Add uint64 }

type report struct{ Sum uint64 }

var errZero = machine.NewError("tally.zero", "tally: cannot add zero")

func (tally) Transition(s *tallyState, in machine.Input[tallyInput, bool], out *machine.Actions[report, machine.None]) error {
	if in.Completion != nil {
		s.Reporting = false
		return nil
	}
	if in.Value.Add == 0 {
		return errZero
	}
	s.Sum += in.Value.Add
	s.Count++
	if s.Count%10 == 0 && !s.Reporting {
		s.Next++
		s.Reporting = true
		return out.Track(s.Next, report{Sum: s.Sum})
	}
	return nil
}

func (tally) Restore(s *tallyState, out *machine.Actions[report, machine.None]) error {
	if s.Reporting {
		return out.Track(s.Next, report{Sum: s.Sum})
	}
	return nil
}

type tallyKind = machine.Kind[tallyState, tallyInput, report, bool, machine.None]

func newTallyKind(t *testing.T) *tallyKind {
	k, err := machine.NewKind[tallyState, tallyInput, report, bool, machine.None]("st-tally", tally{},
		machine.Options[tallyState, tallyInput, report, bool, machine.None]{})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testReplay drives the tiny machine through the store as the runtime
// does (append each step's records with the expected seq, a snapshot when
// the policy says so, the pending flag), then recovers it from Load
// through machine.Kind.Recover and compares.
func testReplay(t *testing.T, h Harness) {
	for _, retain := range []bool{false, true} {
		t.Run(fmt.Sprintf("RetainJournal=%v", retain), func(t *testing.T) {
			seed := rand.Uint64()
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, 2))
			s := h.Open(t, Config{RetainJournal: retain})
			kind := newTallyKind(t)
			id := "st-" + t.Name()
			e := machine.Entity{Kind: kind.Name(), ID: id}
			d, err := kind.NewDriver(id)
			if err != nil {
				t.Fatal(err)
			}
			policy := persistence.SnapshotPolicy{EveryRecords: 7}
			var lastSnap uint64
			var fx machine.Effects[report, machine.None]
			clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			for step := range 100 {
				fx.Reset()
				clock = clock.Add(time.Second)
				in := machine.Input[tallyInput, bool]{Time: clock, Value: tallyInput{Add: uint64(rng.IntN(4))}, RequestID: fmt.Sprint("r", step)}
				if d.State().Reporting && rng.IntN(3) == 0 {
					in = machine.Input[tallyInput, bool]{Time: clock, Completion: &machine.Completion[bool]{ActionID: d.State().Next, Result: true}}
				}
				before := d.Seq()
				if _, err := d.Step(in, &fx); err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				if len(fx.Records) == 0 {
					continue
				}
				req := persistence.AppendRequest{Entity: e, Shard: 9, ExpectedSeq: before, Records: fx.Records, Pending: d.NumOutstanding() > 0}
				if policy.Due(lastSnap, d.Seq()) {
					sn, err := d.Snapshot()
					if err != nil {
						t.Fatal(err)
					}
					req.Snapshot = &sn
					lastSnap = sn.Seq
				}
				mustAppend(t, s, req)
			}
			l := mustLoad(t, s, e)
			if l.LastSeq != d.Seq() {
				t.Fatalf("LastSeq %d, driver at %d", l.LastSeq, d.Seq())
			}
			if lastSnap > 0 && (l.Snapshot == nil || l.Snapshot.Seq != lastSnap) {
				t.Fatalf("snapshot %v, want seq %d", l.Snapshot, lastSnap)
			}
			back, err := kind.Recover(id, l.Snapshot, l.Records)
			if err != nil {
				t.Fatalf("recover: %v", err)
			}
			if back.Seq() != d.Seq() || *back.State() != *d.State() {
				t.Fatalf("recovered seq %d state %+v, want seq %d state %+v", back.Seq(), *back.State(), d.Seq(), *d.State())
			}
			pending, err := s.Pending(ctxFor(t), 9)
			if err != nil {
				t.Fatal(err)
			}
			listed := len(pending) == 1 && pending[0] == e
			if listed != (d.NumOutstanding() > 0) {
				t.Fatalf("pending index lists the entity: %v, but it has %d outstanding actions", listed, d.NumOutstanding())
			}
		})
	}
}
