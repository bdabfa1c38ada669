package raft

import (
	"fmt"
	"strconv"
)

// None is the ID of no node: no vote cast, no leader known.
const None uint64 = 0

// EntryType tells how an Entry's Data is to be read.
type EntryType uint8

const (
	// EntryNormal carries an opaque command for the host's state machine. An
	// EntryNormal with empty Data is the no-op a new leader appends (Raft §8).
	EntryNormal EntryType = iota + 1
	// EntryConfChange carries a membership change (ProposeConfChange);
	// decode its Data with DecodeConfChange. The core applies it itself
	// when the host Advances past it; the host's state machine skips it.
	EntryConfChange
)

func (t EntryType) String() string {
	switch t {
	case EntryNormal:
		return "Normal"
	case EntryConfChange:
		return "ConfChange"
	}
	return "EntryType(" + strconv.Itoa(int(t)) + ")"
}

// Entry is one slot of the replicated log. Entries handed out by the core are
// shared with it: callers must not modify them or their Data.
type Entry struct {
	Term  uint64
	Index uint64
	Type  EntryType
	Data  []byte
}

// size is the number of bytes an entry is charged against message and
// in-flight byte limits: its payload plus a fixed header estimate.
func (e *Entry) size() uint64 { return uint64(len(e.Data)) + entryOverhead }

// entryOverhead approximates the encoded size of an entry's fixed fields.
const entryOverhead = 24

func (e Entry) String() string {
	return fmt.Sprintf("%d/%d %s %q", e.Term, e.Index, e.Type, e.Data)
}

// HardState is the state a node must have on stable storage before it sends
// the messages of the same Ready (Raft Figure 2, "persistent state on all
// servers"). Commit is stored for faster restarts; losing it is safe.
type HardState struct {
	Term   uint64
	Vote   uint64
	Commit uint64
}

// IsEmpty reports whether h is the zero HardState.
func (h HardState) IsEmpty() bool { return h == HardState{} }

// ConfState is a membership configuration: the one a snapshot was taken
// under, or the one a configuration entry leads to. ID lists are sorted.
type ConfState struct {
	// Voters are the members whose acknowledgements count toward quorums
	// (the incoming half of a joint configuration).
	Voters []uint64
	// VotersOutgoing is the outgoing half of a joint configuration
	// (dissertation §4.3): while it is set, decisions need a majority of
	// both. Empty outside a membership change.
	VotersOutgoing []uint64
	// Learners receive the log but neither vote nor count toward quorums.
	Learners []uint64
	// AutoLeave makes the leader leave the joint configuration on its own
	// once it is applied.
	AutoLeave bool
}

// SnapshotMeta describes the log prefix a snapshot replaces.
type SnapshotMeta struct {
	// Index and Term identify the last entry the snapshot covers.
	Index uint64
	Term  uint64
	// ConfState is the membership as of Index.
	ConfState ConfState
}

// Snapshot is a host state machine image as of Meta.Index. The core never
// reads Data; it only carries it to followers that are behind the compaction
// point.
type Snapshot struct {
	Meta SnapshotMeta
	Data []byte
}

// IsEmpty reports whether s carries no snapshot.
func (s *Snapshot) IsEmpty() bool { return s == nil || s.Meta.Index == 0 }

// MessageType identifies a Raft RPC or its response.
type MessageType uint8

const (
	// MsgVote asks for a vote in Term (Raft §5.2, RequestVote). Index and
	// LogTerm are the candidate's last log index and term.
	MsgVote MessageType = iota + 1
	// MsgVoteResp answers MsgVote; Reject is false for a granted vote.
	MsgVoteResp
	// MsgPreVote asks whether the receiver would vote in Term without
	// anybody changing term (dissertation §9.6).
	MsgPreVote
	// MsgPreVoteResp answers MsgPreVote.
	MsgPreVoteResp
	// MsgApp replicates Entries after the entry (Index, LogTerm) and carries
	// the leader's commit index (Raft §5.3, AppendEntries).
	MsgApp
	// MsgAppResp answers MsgApp. On success Index is the last index the
	// follower now matches. On a rejection Index echoes the rejected MsgApp's
	// Index, and RejectHint/LogTerm name the follower's best guess of where
	// the logs diverge: the largest index at or below Index whose term is at
	// most the MsgApp's LogTerm, and that index's term.
	MsgAppResp
	// MsgHeartbeat keeps followers from starting elections and carries a
	// commit index the follower is known to have entries for.
	MsgHeartbeat
	// MsgHeartbeatResp answers MsgHeartbeat.
	MsgHeartbeatResp
	// MsgSnap replaces a lagging follower's log with Snapshot (Raft §7,
	// InstallSnapshot). The follower answers with MsgAppResp.
	MsgSnap
	// MsgReadIndex asks the leader for a read index on behalf of a
	// follower's ReadIndex call; Context is the follower host's read ID.
	MsgReadIndex
	// MsgReadIndexResp answers MsgReadIndex: Index is the confirmed read
	// index and Context the read ID.
	MsgReadIndexResp
	// MsgTimeoutNow tells a follower to start an election at once: the
	// leader is handing it its role (dissertation §3.10).
	MsgTimeoutNow
	msgTypeEnd // one past the last type
)

var msgTypeNames = [...]string{
	MsgVote:          "MsgVote",
	MsgVoteResp:      "MsgVoteResp",
	MsgPreVote:       "MsgPreVote",
	MsgPreVoteResp:   "MsgPreVoteResp",
	MsgApp:           "MsgApp",
	MsgAppResp:       "MsgAppResp",
	MsgHeartbeat:     "MsgHeartbeat",
	MsgHeartbeatResp: "MsgHeartbeatResp",
	MsgSnap:          "MsgSnap",
	MsgReadIndex:     "MsgReadIndex",
	MsgReadIndexResp: "MsgReadIndexResp",
	MsgTimeoutNow:    "MsgTimeoutNow",
}

func (t MessageType) String() string {
	if int(t) < len(msgTypeNames) && msgTypeNames[t] != "" {
		return msgTypeNames[t]
	}
	return "MessageType(" + strconv.Itoa(int(t)) + ")"
}

// IsResponse reports whether t answers another message.
func (t MessageType) IsResponse() bool {
	switch t {
	case MsgVoteResp, MsgPreVoteResp, MsgAppResp, MsgHeartbeatResp, MsgReadIndexResp:
		return true
	}
	return false
}

// Message is one Raft RPC between two nodes. The meaning of Index, LogTerm
// and RejectHint depends on Type (see the MessageType constants).
type Message struct {
	Type       MessageType
	From       uint64
	To         uint64
	Term       uint64
	LogTerm    uint64
	Index      uint64
	Entries    []Entry
	Commit     uint64
	Reject     bool
	RejectHint uint64
	Snapshot   *Snapshot
	// Context ties answers to requests: the heartbeat round of a
	// MsgHeartbeat, echoed by its MsgHeartbeatResp (read confirmation,
	// dissertation §6.4), and the host's read ID in MsgReadIndex and
	// MsgReadIndexResp.
	Context uint64
}

// size is the number of bytes a message is charged for its entries.
func (m *Message) size() uint64 {
	var n uint64
	for i := range m.Entries {
		n += m.Entries[i].size()
	}
	return n
}

func (m Message) String() string {
	s := fmt.Sprintf("%d->%d %s term=%d", m.From, m.To, m.Type, m.Term)
	switch m.Type {
	case MsgVote, MsgPreVote:
		s += fmt.Sprintf(" last=%d/%d", m.LogTerm, m.Index)
		if m.Context == contextTransfer {
			s += " transfer"
		}
	case MsgApp:
		s += fmt.Sprintf(" prev=%d/%d commit=%d", m.LogTerm, m.Index, m.Commit)
		if n := len(m.Entries); n > 0 {
			s += fmt.Sprintf(" entries=[%d..%d]", m.Entries[0].Index, m.Entries[n-1].Index)
		}
	case MsgAppResp:
		s += fmt.Sprintf(" index=%d", m.Index)
		if m.Reject {
			s += fmt.Sprintf(" hint=%d/%d", m.LogTerm, m.RejectHint)
		}
	case MsgHeartbeat:
		s += fmt.Sprintf(" commit=%d", m.Commit)
		if m.Context != 0 {
			s += fmt.Sprintf(" round=%d", m.Context)
		}
	case MsgHeartbeatResp:
		if m.Context != 0 {
			s += fmt.Sprintf(" round=%d", m.Context)
		}
	case MsgReadIndex:
		s += fmt.Sprintf(" read=%d", m.Context)
	case MsgReadIndexResp:
		s += fmt.Sprintf(" read=%d index=%d", m.Context, m.Index)
	case MsgSnap:
		if m.Snapshot != nil {
			s += fmt.Sprintf(" snap=%d/%d", m.Snapshot.Meta.Term, m.Snapshot.Meta.Index)
		}
	}
	if m.Reject {
		s += " rejected"
	}
	return s
}
