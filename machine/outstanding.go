package machine

import "iter"

// outstandingSet holds an entity's outstanding tracked actions by ID. Most
// entities have a few at a time: up to outstandingSmall live in a slice,
// scanned, where adding and removing one costs no hashing (and removing
// the last does not reseed a map, as Go's maps do when they empty); more
// move to a map, for good. The zero value is an empty set.
type outstandingSet[A any] struct {
	small []Tracked[A] // in no particular order, while m is nil
	m     map[ActionID]A
}

// outstandingSmall is the size up to which the set is a slice.
const outstandingSmall = 8

func (s *outstandingSet[A]) len() int {
	if s.m != nil {
		return len(s.m)
	}
	return len(s.small)
}

func (s *outstandingSet[A]) index(id ActionID) int {
	for i := range s.small {
		if s.small[i].ID == id {
			return i
		}
	}
	return -1
}

func (s *outstandingSet[A]) has(id ActionID) bool {
	if s.m != nil {
		_, ok := s.m[id]
		return ok
	}
	return s.index(id) >= 0
}

func (s *outstandingSet[A]) get(id ActionID) (A, bool) {
	if s.m != nil {
		a, ok := s.m[id]
		return a, ok
	}
	if i := s.index(id); i >= 0 {
		return s.small[i].Action, true
	}
	var zero A
	return zero, false
}

func (s *outstandingSet[A]) put(id ActionID, a A) {
	if s.m != nil {
		s.m[id] = a
		return
	}
	if i := s.index(id); i >= 0 {
		s.small[i].Action = a
		return
	}
	if len(s.small) < outstandingSmall {
		s.small = append(s.small, Tracked[A]{ID: id, Action: a})
		return
	}
	s.m = make(map[ActionID]A, 2*outstandingSmall)
	for _, t := range s.small {
		s.m[t.ID] = t.Action
	}
	s.m[id] = a
	s.small = nil
}

func (s *outstandingSet[A]) delete(id ActionID) {
	if s.m != nil {
		delete(s.m, id)
		return
	}
	if i := s.index(id); i >= 0 {
		last := len(s.small) - 1
		s.small[i] = s.small[last]
		s.small[last] = Tracked[A]{} // keep nothing alive
		s.small = s.small[:last]
	}
}

// all yields the actions in no particular order.
func (s *outstandingSet[A]) all() iter.Seq2[ActionID, A] {
	return func(yield func(ActionID, A) bool) {
		if s.m != nil {
			for id, a := range s.m {
				if !yield(id, a) {
					return
				}
			}
			return
		}
		for _, t := range s.small {
			if !yield(t.ID, t.Action) {
				return
			}
		}
	}
}
