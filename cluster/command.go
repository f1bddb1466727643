package cluster

import (
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/phasm-go/phasm/shard"
)

// CommandType tags a Command. The zero value is invalid.
type CommandType uint8

// The command types. Their numbers are a persisted format (they are in the
// Raft log): never renumber them, only add.
const (
	// CmdInit creates the shard map with Shards unowned shards. The first
	// leader of a new cluster applies it once; applying it again with the
	// same count changes nothing.
	CmdInit CommandType = iota + 1
	// CmdAddMember admits Node with Addrs as Joining (a new member gets
	// incarnation 1). A member that is Down or Leaving, or whose addresses
	// changed, rejoins: its incarnation rises and it is Joining again. A
	// repeat of the same join changes nothing, so join retries are safe.
	CmdAddMember
	// CmdMarkAlive: the leader has heard from Node (Joining, Suspect or
	// Down) in its current incarnation.
	CmdMarkAlive
	// CmdMarkSuspect: the leader has missed Node's heartbeats (Alive or
	// Joining) for a while.
	CmdMarkSuspect
	// CmdMarkDown: Node has been silent for the failure timeout. Its shards
	// move in the next round.
	CmdMarkDown
	// CmdLeave: Node begins a graceful leave (Leaving): the allocator
	// drains its shards.
	CmdLeave
	// CmdRemove: Node, which owns no shards, stops being a member.
	CmdRemove
	// CmdApplyRound applies Round (planned by the leader) to the shard map,
	// only if Round.MapEpoch is the map's epoch and every destination is
	// an Alive member.
	CmdApplyRound
	// CmdHeartbeat records that the leader heard from Node at AtUnixNano in
	// Term. It changes no status.
	CmdHeartbeat

	maxCommandType = CmdHeartbeat
)

var commandNames = [...]string{
	CmdInit: "init", CmdAddMember: "add-member", CmdMarkAlive: "mark-alive",
	CmdMarkSuspect: "mark-suspect", CmdMarkDown: "mark-down", CmdLeave: "leave",
	CmdRemove: "remove", CmdApplyRound: "apply-round", CmdHeartbeat: "heartbeat",
}

// String returns the command type's name, or "CommandType(n)".
func (t CommandType) String() string {
	if t >= 1 && t <= maxCommandType {
		return commandNames[t]
	}
	return "CommandType(" + strconv.Itoa(int(t)) + ")"
}

// Limits of the replicated state. They bound what a command or snapshot can
// make a replica allocate.
const (
	// MaxMembers bounds the member list, Down members included.
	MaxMembers = 1024
	// MaxAddrLen bounds each address in bytes.
	MaxAddrLen = 255
)

// Addresses are where a member can be reached.
type Addresses struct {
	// Raft is the Raft transport address (host:port).
	Raft string
	// Remote is the actor host's protoactor remote address (host:port);
	// may be empty for a member that hosts no actors.
	Remote string
	// Admin is the cluster RPC address (join, heartbeat, leave, status).
	Admin string
}

func (a Addresses) check(p *[]string) {
	for _, f := range []struct{ name, v string }{{"Raft", a.Raft}, {"Remote", a.Remote}, {"Admin", a.Admin}} {
		if len(f.v) > MaxAddrLen {
			*p = append(*p, fmt.Sprintf("address %s is %d bytes, limit %d", f.name, len(f.v), MaxAddrLen))
		}
	}
	if a.Raft == "" {
		*p = append(*p, "address Raft is empty")
	}
	if a.Admin == "" {
		*p = append(*p, "address Admin is empty")
	}
}

// Command is one change of the replicated State: a Raft log entry. The
// leader stamps AtUnixNano and Term when it proposes it; Apply reads time
// only from there, so every replica applies it identically. Which fields a
// type uses is listed in its constant's documentation; the encoding keeps
// only those, and the others must be zero.
type Command struct {
	Type CommandType
	// AtUnixNano is the leader's clock when it proposed the command.
	AtUnixNano int64
	// Term is the leader's Raft term when it proposed the command.
	Term uint64
	// Node is the member concerned (all types but Init and ApplyRound).
	Node shard.NodeID
	// Incarnation is the incarnation of Node the command concerns
	// (MarkAlive, MarkSuspect, MarkDown, Leave, Heartbeat); 0 means the
	// current one, whatever it is.
	Incarnation uint64
	// Addrs are the member's addresses (AddMember).
	Addrs Addresses
	// Shards is the shard count (Init).
	Shards int
	// Round is the planned round (ApplyRound). Only MapEpoch and Moves are
	// encoded; Pending and the flags are the planner's commentary.
	Round shard.Round
}

// commandVersion is the first byte of an encoded Command.
const commandVersion = 1

// The encoding of a Command, version 1:
//
//	version   byte (1)
//	type      byte
//	at        zig-zag varint (AtUnixNano)
//	term      uvarint
//	then by type:
//	  Init                         shards uvarint
//	  AddMember                    node, raft, remote, admin (strings)
//	  MarkAlive/Suspect/Down,
//	  Leave, Heartbeat             node string, incarnation uvarint
//	  Remove                       node string
//	  ApplyRound                   map epoch uvarint, move count uvarint, then
//	                               per move: shard uvarint, from string,
//	                               to string, reason byte
//	checksum  4 bytes, little-endian CRC-32C of all the above
//
// Strings are a uvarint length and the bytes. The encoding is canonical:
// decoding and encoding again gives the same bytes.

// MarshalBinary returns the canonical encoding of c. A command that fails
// Validate is not encoded: the error wraps ErrInvalidCommand.
func (c Command) MarshalBinary() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	b := []byte{commandVersion, byte(c.Type)}
	b = binary.AppendVarint(b, c.AtUnixNano)
	b = binary.AppendUvarint(b, c.Term)
	switch c.Type {
	case CmdInit:
		b = binary.AppendUvarint(b, uint64(c.Shards))
	case CmdAddMember:
		b = appendString(b, string(c.Node))
		b = appendString(b, c.Addrs.Raft)
		b = appendString(b, c.Addrs.Remote)
		b = appendString(b, c.Addrs.Admin)
	case CmdMarkAlive, CmdMarkSuspect, CmdMarkDown, CmdLeave, CmdHeartbeat:
		b = appendString(b, string(c.Node))
		b = binary.AppendUvarint(b, c.Incarnation)
	case CmdRemove:
		b = appendString(b, string(c.Node))
	case CmdApplyRound:
		b = binary.AppendUvarint(b, c.Round.MapEpoch)
		b = binary.AppendUvarint(b, uint64(len(c.Round.Moves)))
		for _, m := range c.Round.Moves {
			b = binary.AppendUvarint(b, uint64(m.Shard))
			b = appendString(b, string(m.From))
			b = appendString(b, string(m.To))
			b = append(b, byte(m.Reason))
		}
	}
	return appendChecksum(b, 0), nil
}

// Validate reports every problem of c in itself (not against a State),
// each wrapping ErrInvalidCommand: an unknown type, a missing or oversized
// node ID or address, a shard count out of range, a round with too many
// moves or invalid node IDs, and fields the type does not use that are
// not zero.
func (c Command) Validate() error {
	var p []string
	if c.Type < 1 || c.Type > maxCommandType {
		return fmt.Errorf("%w: unknown type %d", ErrInvalidCommand, uint8(c.Type))
	}
	usesNode := c.Type != CmdInit && c.Type != CmdApplyRound
	usesInc := c.Type == CmdMarkAlive || c.Type == CmdMarkSuspect || c.Type == CmdMarkDown || c.Type == CmdLeave || c.Type == CmdHeartbeat
	if usesNode {
		if why := checkNodeID(c.Node); why != "" {
			p = append(p, "node ID "+why)
		}
	} else if c.Node != "" {
		p = append(p, "node ID set on a "+c.Type.String()+" command")
	}
	if !usesInc && c.Incarnation != 0 {
		p = append(p, "incarnation set on a "+c.Type.String()+" command")
	}
	if c.Type == CmdAddMember {
		c.Addrs.check(&p)
	} else if c.Addrs != (Addresses{}) {
		p = append(p, "addresses set on a "+c.Type.String()+" command")
	}
	if c.Type == CmdInit {
		if err := shard.CheckShards(c.Shards); err != nil {
			p = append(p, err.Error())
		}
	} else if c.Shards != 0 {
		p = append(p, "shard count set on a "+c.Type.String()+" command")
	}
	if c.Type == CmdApplyRound {
		if len(c.Round.Moves) > shard.MaxShards {
			p = append(p, fmt.Sprintf("round has %d moves, more than MaxShards", len(c.Round.Moves)))
		}
		for i, m := range c.Round.Moves {
			if len(m.From) > shard.MaxNodeIDLen {
				p = append(p, fmt.Sprintf("move %d: From is too long", i))
			}
			if why := checkNodeID(m.To); why != "" {
				p = append(p, fmt.Sprintf("move %d: To %s", i, why))
			}
			if int(m.Shard) >= shard.MaxShards {
				p = append(p, fmt.Sprintf("move %d: shard %d out of range", i, m.Shard))
			}
		}
	} else if c.Round.MapEpoch != 0 || len(c.Round.Moves) != 0 {
		p = append(p, "round set on a "+c.Type.String()+" command")
	}
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s: %v", ErrInvalidCommand, c.Type, p)
}

func checkNodeID(n shard.NodeID) string {
	switch {
	case n == "":
		return "is empty"
	case len(n) > shard.MaxNodeIDLen:
		return "is longer than 255 bytes"
	}
	return ""
}

// UnmarshalBinary decodes what MarshalBinary wrote. An unknown version or
// type is a *DecodeError wrapping ErrUnknownCommand; anything else wrong
// (truncation, checksum, non-canonical varints, trailing bytes, fields
// that fail Validate) is a *DecodeError wrapping ErrCorruptCommand. It never
// panics, leaves c unchanged on error, and does not alias data.
func (c *Command) UnmarshalBinary(data []byte) error {
	r, ok := newReader(data)
	if !ok {
		return r.error("command", ErrCorruptCommand)
	}
	if v := r.byte("version"); v != commandVersion {
		r.off--
		r.fail("version %d", v)
		return r.error("command", ErrUnknownCommand)
	}
	var out Command
	out.Type = CommandType(r.byte("type"))
	if out.Type < 1 || out.Type > maxCommandType {
		r.off--
		r.fail("type %d", uint8(out.Type))
		return r.error("command", ErrUnknownCommand)
	}
	out.AtUnixNano = r.varint("at")
	out.Term = r.uvarint("term")
	switch out.Type {
	case CmdInit:
		n := r.uvarint("shards")
		if n > shard.MaxShards {
			r.fail("shard count %d", n)
		}
		out.Shards = int(n)
	case CmdAddMember:
		out.Node = shard.NodeID(r.string("node", shard.MaxNodeIDLen))
		out.Addrs.Raft = r.string("raft address", MaxAddrLen)
		out.Addrs.Remote = r.string("remote address", MaxAddrLen)
		out.Addrs.Admin = r.string("admin address", MaxAddrLen)
	case CmdMarkAlive, CmdMarkSuspect, CmdMarkDown, CmdLeave, CmdHeartbeat:
		out.Node = shard.NodeID(r.string("node", shard.MaxNodeIDLen))
		out.Incarnation = r.uvarint("incarnation")
	case CmdRemove:
		out.Node = shard.NodeID(r.string("node", shard.MaxNodeIDLen))
	case CmdApplyRound:
		out.Round.MapEpoch = r.uvarint("map epoch")
		n := r.uvarint("move count")
		// A move takes at least 4 bytes: refuse counts the input cannot hold
		// before allocating.
		if n > shard.MaxShards || n > uint64(len(r.b)-r.off)/4 {
			r.fail("move count %d", n)
		}
		if !r.failed() && n > 0 {
			out.Round.Moves = make([]shard.Move, 0, n)
		}
		for i := uint64(0); i < n && !r.failed(); i++ {
			var m shard.Move
			s := r.uvarint("shard")
			if s >= shard.MaxShards {
				r.fail("shard %d", s)
			}
			m.Shard = shard.ID(s)
			m.From = shard.NodeID(r.string("from", shard.MaxNodeIDLen))
			m.To = shard.NodeID(r.string("to", shard.MaxNodeIDLen))
			m.Reason = shard.Reason(r.byte("reason"))
			out.Round.Moves = append(out.Round.Moves, m)
		}
	}
	r.end()
	if err := r.error("command", ErrCorruptCommand); err != nil {
		return err
	}
	if err := out.Validate(); err != nil {
		return &DecodeError{What: "command", Offset: r.off, Reason: err.Error(), Err: ErrCorruptCommand}
	}
	*c = out
	return nil
}
