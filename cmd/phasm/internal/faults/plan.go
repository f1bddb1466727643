package faults

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"
)

// Kind is a kind of fault the nemesis injects.
type Kind string

// The kinds of fault.
const (
	// KillNode SIGKILLs a node's container (docker kill) and starts it
	// again after Hold.
	KillNode Kind = "kill"
	// KillLeader is KillNode aimed at the Raft leader of the moment.
	KillLeader Kind = "kill-leader"
	// Partition cuts a node off from the other two nodes (both ways) for
	// Hold; it keeps PostgreSQL and the clients.
	Partition Kind = "partition"
	// Pause freezes a node's processes (docker pause) for Hold: a gray
	// failure, its sockets stay open.
	Pause Kind = "pause"
	// RollingRestart restarts the three nodes one after another (SIGTERM,
	// graceful leave, start), waiting for the cluster to converge between
	// them.
	RollingRestart Kind = "rolling-restart"
	// PostgresRestart stops PostgreSQL at once (immediate mode: a crash)
	// and starts it after Hold.
	PostgresRestart Kind = "postgres-restart"
)

// Kinds returns every kind, in a fixed order.
func Kinds() []Kind {
	return []Kind{KillNode, KillLeader, Partition, Pause, RollingRestart, PostgresRestart}
}

// Fault is one planned fault.
type Fault struct {
	// N numbers the faults from 1.
	N int
	// Kind is what is done.
	Kind Kind
	// Node is the index of the target node (0-based) for KillNode,
	// Partition and Pause; -1 otherwise (the leader is found when the fault
	// runs).
	Node int
	// Hold is how long the fault lasts before it is healed (0 for
	// RollingRestart).
	Hold time.Duration
	// Gap is the quiet time after the cluster converged, before the next
	// fault.
	Gap time.Duration
}

// String describes the fault in one line.
func (f Fault) String() string {
	target := "-"
	if f.Node >= 0 {
		target = nodeID(f.Node)
	} else if f.Kind == KillLeader {
		target = "leader"
	} else if f.Kind == PostgresRestart {
		target = "postgres"
	} else if f.Kind == RollingRestart {
		target = "n1,n2,n3"
	}
	return fmt.Sprintf("#%d %s %s hold %s gap %s", f.N, f.Kind, target, f.Hold, f.Gap)
}

// ErrPlan: the plan cannot be drawn as asked.
var ErrPlan = errors.New("faults: invalid plan")

// holds bounds each kind's Hold (min, max).
var holds = map[Kind][2]time.Duration{
	KillNode:        {2 * time.Second, 8 * time.Second},
	KillLeader:      {2 * time.Second, 8 * time.Second},
	Partition:       {4 * time.Second, 12 * time.Second},
	Pause:           {3 * time.Second, 10 * time.Second},
	RollingRestart:  {0, 0},
	PostgresRestart: {1 * time.Second, 5 * time.Second},
}

// Plan draws n faults over nodes nodes from seed: the first len(kinds)
// are every kind once in a seeded order (so a plan of at least that many
// faults has every kind), the rest are drawn uniformly from kinds. Holds
// and gaps are drawn within fixed bounds. The same arguments give the
// same plan.
func Plan(seed uint64, n, nodes int, kinds []Kind) ([]Fault, error) {
	var errs []error
	if n < 1 {
		errs = append(errs, fmt.Errorf("%w: %d faults, want at least 1", ErrPlan, n))
	}
	if nodes < 3 {
		errs = append(errs, fmt.Errorf("%w: %d nodes, want at least 3", ErrPlan, nodes))
	}
	if len(kinds) == 0 {
		errs = append(errs, fmt.Errorf("%w: no kinds of fault", ErrPlan))
	}
	for _, k := range kinds {
		if _, ok := holds[k]; !ok {
			errs = append(errs, fmt.Errorf("%w: unknown kind %q", ErrPlan, k))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(seed, 0x6e656d65736973)) // "nemesis"
	order := append([]Kind(nil), kinds...)
	r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	between := func(lo, hi time.Duration) time.Duration {
		if hi <= lo {
			return lo
		}
		// Whole 100 ms steps: the schedule reads well when printed.
		steps := int64((hi - lo) / (100 * time.Millisecond))
		return lo + time.Duration(r.Int64N(steps+1))*100*time.Millisecond
	}
	plan := make([]Fault, n)
	for i := range plan {
		k := kinds[r.IntN(len(kinds))]
		if i < len(order) {
			k = order[i]
		}
		f := Fault{N: i + 1, Kind: k, Node: -1}
		switch k {
		case KillNode, Partition, Pause:
			f.Node = r.IntN(nodes)
		}
		h := holds[k]
		f.Hold = between(h[0], h[1])
		f.Gap = between(2*time.Second, 5*time.Second)
		plan[i] = f
	}
	return plan, nil
}

// PrintPlan writes the plan, one fault a line.
func PrintPlan(w io.Writer, seed uint64, plan []Fault) {
	var b strings.Builder
	fmt.Fprintf(&b, "nemesis schedule, seed %d, %d faults:\n", seed, len(plan))
	for _, f := range plan {
		fmt.Fprintf(&b, "  %s\n", f)
	}
	io.WriteString(w, b.String())
}

func nodeID(i int) string { return fmt.Sprintf("n%d", i+1) }
