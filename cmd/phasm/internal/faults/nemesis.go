package faults

import (
	"context"
	"fmt"
	"time"
)

// nemesis injects faults into a test cluster, one at a time.
type nemesis struct {
	cl   *testCluster
	pg   *postgres
	cfg  Config
	logf func(string, ...any)
}

// inject runs f: the fault, its hold, the heal, and the wait for the
// cluster to converge.
func (m *nemesis) inject(ctx context.Context, f Fault) Injected {
	inj := Injected{Fault: f}
	cl := m.cl
	var target *node
	if f.Node >= 0 {
		target = cl.nodes[f.Node]
		inj.Target = target.id
	}
	hold := func() {
		m.logf("fault %s on %s: holding %s", f.Kind, inj.Target, f.Hold)
		_ = sleepCtx(ctx, f.Hold)
	}
	inj.Start = time.Now()
	switch f.Kind {
	case KillLeader:
		l, err := cl.leader(ctx)
		if err != nil {
			inj.Err = err
			return inj
		}
		target = l
		inj.Target = l.id + " (leader)"
		fallthrough
	case KillNode:
		if inj.Err = cl.kill(ctx, target); inj.Err != nil {
			return inj
		}
		hold()
		inj.Healed = time.Now()
		inj.Err = cl.start(ctx, target)
	case Partition:
		if inj.Err = cl.partition(ctx, target, true); inj.Err != nil {
			return inj
		}
		hold()
		inj.Healed = time.Now()
		inj.Err = cl.partition(ctx, target, false)
	case Pause:
		if inj.Err = cl.pause(ctx, target); inj.Err != nil {
			return inj
		}
		hold()
		inj.Healed = time.Now()
		inj.Err = cl.unpause(ctx, target)
	case PostgresRestart:
		inj.Target = "postgres"
		if inj.Err = m.pg.crash(ctx); inj.Err != nil {
			return inj
		}
		hold()
		inj.Healed = time.Now()
		inj.Err = m.pg.start(ctx)
	case RollingRestart:
		inj.Target = joinIDs(cl.nodes)
		for _, n := range cl.nodes {
			m.logf("fault %s: restarting %s (SIGTERM, start)", f.Kind, n.id)
			if inj.Err = cl.stop(ctx, n); inj.Err != nil {
				return inj
			}
			if inj.Err = cl.start(ctx, n); inj.Err != nil {
				return inj
			}
			if _, err := cl.waitConverged(ctx, m.cfg.Converge); err != nil {
				inj.ConvergeErr = fmt.Errorf("after restarting %s: %w", n.id, err)
				inj.Healed = time.Now()
				return inj
			}
		}
		inj.Healed = time.Now()
	default:
		inj.Err = fmt.Errorf("%w: unknown kind %q", ErrPlan, f.Kind)
		return inj
	}
	if inj.Err != nil {
		return inj
	}
	inj.Converged, inj.ConvergeErr = cl.waitConverged(ctx, m.cfg.Converge)
	m.logf("fault %s on %s: healed; converged %.1f s later (%v)", f.Kind, inj.Target, inj.Converged.Seconds(), inj.ConvergeErr)
	return inj
}
