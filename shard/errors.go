package shard

import (
	"errors"
	"fmt"
)

// Sentinel errors. Check them with errors.Is; every error this package
// returns wraps one of them.
var (
	// ErrInvalidShards: a shard count outside [1, MaxShards].
	ErrInvalidShards = errors.New("shard: invalid shard count")
	// ErrInvalidMap: a Map breaks one of its invariants (see Map.Validate).
	ErrInvalidMap = errors.New("shard: invalid map")
	// ErrInvalidMembers: a member list has an empty, oversized or duplicate
	// node ID, or an unknown status.
	ErrInvalidMembers = errors.New("shard: invalid members")
	// ErrInvalidOptions: PlanOptions failed validation.
	ErrInvalidOptions = errors.New("shard: invalid plan options")
	// ErrInvalidPlan: a Round's moves do not fit the map they are applied
	// to (a shard out of range or moved twice, a From that is not the
	// current owner, an empty or invalid To).
	ErrInvalidPlan = errors.New("shard: invalid plan")
	// ErrStalePlan: a Round was computed from a map version other than the
	// one it is applied to. Plan again from the current map.
	ErrStalePlan = errors.New("shard: stale plan")
	// ErrCorrupt: an encoded Map is malformed, truncated, of an unknown
	// version, fails its checksum, or decodes to an invalid map.
	ErrCorrupt = errors.New("shard: corrupt map encoding")
)

// maxProblems bounds the problems one validation error lists, so a map of
// 65536 broken shards does not produce a megabyte of error text.
const maxProblems = 32

// problems collects validation failures, each wrapping one sentinel, and
// joins them into one error.
type problems struct {
	sentinel error
	list     []error
	more     int
}

func (p *problems) add(format string, args ...any) {
	if len(p.list) >= maxProblems {
		p.more++
		return
	}
	p.list = append(p.list, fmt.Errorf("%w: %s", p.sentinel, fmt.Sprintf(format, args...)))
}

// wrap adds err as a problem that also wraps the sentinel.
func (p *problems) wrap(err error) {
	if len(p.list) >= maxProblems {
		p.more++
		return
	}
	p.list = append(p.list, fmt.Errorf("%w: %w", p.sentinel, err))
}

func (p *problems) err() error {
	if p.more > 0 {
		p.list = append(p.list, fmt.Errorf("%w: and %d more problems", p.sentinel, p.more))
		p.more = 0
	}
	return errors.Join(p.list...)
}
