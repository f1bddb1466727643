package cluster

import (
	"encoding/binary"

	"github.com/phasm-go/phasm/shard"
)

// snapshotVersion is the first byte of an encoded State.
const snapshotVersion = 1

// maxMapBytes bounds an encoded shard map inside a snapshot: MaxShards
// shards at a few bytes each, plus MaxMembers owners.
const maxMapBytes = shard.MaxShards*12 + MaxMembers*(shard.MaxNodeIDLen+2) + 64

// MaxSnapshotBytes bounds an encoded State; Restore refuses longer input.
const MaxSnapshotBytes = maxMapBytes + MaxMembers*(shard.MaxNodeIDLen+3*MaxAddrLen+64) + 64

// The encoding of a State, version 1:
//
//	version   byte (1)
//	version   uvarint (State.Version)
//	map       uvarint length (0: not initialized), then shard.Map's
//	          canonical encoding
//	members   uvarint count, then per member in ascending ID order: ID,
//	          raft, remote, admin (strings), status byte, incarnation
//	          uvarint, status-since varint, last-heartbeat varint,
//	          last-heartbeat-term uvarint
//	checksum  4 bytes, little-endian CRC-32C of all the above
//
// Equal states give equal bytes.

// MarshalBinary returns the canonical encoding of s, the Raft snapshot of the
// cluster. A state that fails Validate is not encoded (the error wraps
// ErrInvalidState).
func (s *State) MarshalBinary() ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	b := []byte{snapshotVersion}
	b = binary.AppendUvarint(b, s.Version)
	if s.Initialized() {
		mb, err := s.Map.MarshalBinary()
		if err != nil {
			return nil, err
		}
		b = binary.AppendUvarint(b, uint64(len(mb)))
		b = append(b, mb...)
	} else {
		b = binary.AppendUvarint(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(s.Members)))
	for _, m := range s.Members {
		b = appendString(b, string(m.ID))
		b = appendString(b, m.Addrs.Raft)
		b = appendString(b, m.Addrs.Remote)
		b = appendString(b, m.Addrs.Admin)
		b = append(b, byte(m.Status))
		b = binary.AppendUvarint(b, m.Incarnation)
		b = binary.AppendVarint(b, m.StatusSinceUnixNano)
		b = binary.AppendVarint(b, m.LastHeartbeatUnixNano)
		b = binary.AppendUvarint(b, m.LastHeartbeatTerm)
	}
	return appendChecksum(b, 0), nil
}

// UnmarshalBinary decodes what MarshalBinary wrote into s. Any damage (an
// unknown version included), and any encoding of a state that fails
// Validate, is a *DecodeError wrapping ErrCorruptSnapshot. It never panics,
// leaves s unchanged on error, and does not alias data.
func (s *State) UnmarshalBinary(data []byte) error {
	if len(data) > MaxSnapshotBytes {
		return &DecodeError{What: "snapshot", Reason: "longer than MaxSnapshotBytes", Err: ErrCorruptSnapshot}
	}
	r, ok := newReader(data)
	if !ok {
		return r.error("snapshot", ErrCorruptSnapshot)
	}
	if v := r.byte("version"); v != snapshotVersion {
		r.off--
		r.fail("unknown version %d", v)
		return r.error("snapshot", ErrCorruptSnapshot)
	}
	var out State
	out.Version = r.uvarint("state version")
	if mb := r.bytes("map", maxMapBytes); len(mb) > 0 {
		if err := out.Map.UnmarshalBinary(mb); err != nil {
			r.fail("map: %v", err)
		}
	}
	n := r.uvarint("member count")
	// A member takes at least 10 bytes.
	if n > MaxMembers || n > uint64(len(r.b)-r.off)/10 {
		r.fail("member count %d", n)
	}
	if !r.failed() && n > 0 {
		out.Members = make([]Member, 0, n)
	}
	for i := uint64(0); i < n && !r.failed(); i++ {
		var m Member
		m.ID = shard.NodeID(r.string("member ID", shard.MaxNodeIDLen))
		m.Addrs.Raft = r.string("raft address", MaxAddrLen)
		m.Addrs.Remote = r.string("remote address", MaxAddrLen)
		m.Addrs.Admin = r.string("admin address", MaxAddrLen)
		m.Status = shard.Status(r.byte("status"))
		m.Incarnation = r.uvarint("incarnation")
		m.StatusSinceUnixNano = r.varint("status since")
		m.LastHeartbeatUnixNano = r.varint("last heartbeat")
		m.LastHeartbeatTerm = r.uvarint("last heartbeat term")
		out.Members = append(out.Members, m)
	}
	r.end()
	if err := r.error("snapshot", ErrCorruptSnapshot); err != nil {
		return err
	}
	if err := out.Validate(); err != nil {
		return &DecodeError{What: "snapshot", Offset: r.off, Reason: err.Error(), Err: ErrCorruptSnapshot}
	}
	*s = out
	return nil
}
