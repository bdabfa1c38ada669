package raft

import "fmt"

// ProgressState is how the leader currently sends entries to a follower.
type ProgressState uint8

const (
	// StateProbe sends one MsgApp at a time and waits for its answer: the
	// leader does not yet know where the follower's log matches its own.
	StateProbe ProgressState = iota + 1
	// StateReplicate streams MsgApps optimistically, bounded by Inflights.
	StateReplicate
	// StateSnapshot waits for the follower to install a snapshot.
	StateSnapshot
)

func (s ProgressState) String() string {
	switch s {
	case StateProbe:
		return "probe"
	case StateReplicate:
		return "replicate"
	case StateSnapshot:
		return "snapshot"
	}
	return fmt.Sprintf("ProgressState(%d)", uint8(s))
}

// progress is the leader's view of one member's log (Raft Figure 2,
// "volatile state on leaders"), plus the flow control of the stream to it.
//
// Invariant: Match < Next. In StateReplicate, Next-1 is the last index sent.
type progress struct {
	Match, Next uint64
	State       ProgressState
	// ProbeSent pauses a StateProbe stream after one MsgApp, until an
	// answer or a heartbeat response arrives.
	ProbeSent bool
	// PendingSnapshot is the index of the snapshot sent in StateSnapshot.
	PendingSnapshot uint64
	// SnapshotTicks counts the leader's ticks since the snapshot was sent.
	SnapshotTicks int
	// SentCommit is the highest commit index sent to the member in a
	// MsgApp during this term.
	SentCommit uint64
	// RecentActive is set by any message from the member and cleared by the
	// leader at every election timeout for check-quorum.
	RecentActive bool
	// RoundAcked is the newest heartbeat round (read.go) the member
	// answered in this term.
	RoundAcked uint64
	Inflights  *inflights
}

func (p *progress) resetState(s ProgressState) {
	p.State = s
	p.ProbeSent = false
	p.PendingSnapshot = 0
	p.SnapshotTicks = 0
	p.Inflights.reset()
}

func (p *progress) becomeProbe() {
	if p.State == StateSnapshot {
		// The snapshot (or a newer log) may be in place now; resume after it.
		pending := p.PendingSnapshot
		p.resetState(StateProbe)
		p.Next = max(p.Match+1, pending+1)
		return
	}
	p.resetState(StateProbe)
	p.Next = p.Match + 1
}

func (p *progress) becomeReplicate() {
	p.resetState(StateReplicate)
	p.Next = p.Match + 1
}

func (p *progress) becomeSnapshot(index uint64) {
	p.resetState(StateSnapshot)
	p.PendingSnapshot = index
}

// maybeUpdate records that the member holds the log up to n. It returns
// false when n is stale (not beyond Match).
func (p *progress) maybeUpdate(n uint64) bool {
	updated := false
	if p.Match < n {
		p.Match = n
		p.ProbeSent = false
		updated = true
	}
	p.Next = max(p.Next, n+1)
	return updated
}

// sentEntries records that a MsgApp carrying entries up to last (and bytes
// of payload) left for the member.
func (p *progress) sentEntries(last, bytes uint64, hasEntries bool) {
	switch p.State {
	case StateReplicate:
		if hasEntries {
			p.Next = last + 1
			p.Inflights.add(last, bytes)
		}
	case StateProbe:
		p.ProbeSent = true
	}
}

// maybeDecrTo handles a rejected MsgApp whose prev index was rejected; hint
// is the index the follower suggests probing from (its conflict point). It
// returns false when the rejection is stale.
func (p *progress) maybeDecrTo(rejected, hint uint64) bool {
	if p.State == StateReplicate {
		// A rejection at or below Match answers an old, out-of-order MsgApp.
		if rejected <= p.Match {
			return false
		}
		p.Next = p.Match + 1
		return true
	}
	// In probe state only the answer to the latest probe counts.
	if p.Next-1 != rejected {
		return false
	}
	p.Next = max(min(rejected, hint+1), p.Match+1)
	p.ProbeSent = false
	return true
}

// isPaused reports whether the leader must hold back MsgApps to the member.
func (p *progress) isPaused() bool {
	switch p.State {
	case StateProbe:
		return p.ProbeSent
	case StateReplicate:
		return p.Inflights.full()
	default:
		return true
	}
}

// inflights bounds the MsgApps in flight to one follower, by count and by
// payload bytes. It is a ring of the last index of each message.
type inflights struct {
	start, count int
	bytes        uint64
	maxCount     int
	maxBytes     uint64 // 0 means no byte limit
	last         []uint64
	size         []uint64
}

func newInflights(maxCount int, maxBytes uint64) *inflights {
	return &inflights{maxCount: maxCount, maxBytes: maxBytes}
}

func (in *inflights) add(last, bytes uint64) {
	if in.full() {
		panic("raft: adding to full inflights")
	}
	if in.last == nil {
		in.last = make([]uint64, in.maxCount)
		in.size = make([]uint64, in.maxCount)
	}
	i := (in.start + in.count) % in.maxCount
	in.last[i], in.size[i] = last, bytes
	in.count++
	in.bytes += bytes
}

// freeLE releases every message whose last index is at most to.
func (in *inflights) freeLE(to uint64) {
	for in.count > 0 && in.last[in.start] <= to {
		in.bytes -= in.size[in.start]
		in.start = (in.start + 1) % in.maxCount
		in.count--
	}
	if in.count == 0 {
		in.start = 0
	}
}

// freeFirst releases the oldest message, whatever its index.
func (in *inflights) freeFirst() {
	if in.count > 0 {
		in.freeLE(in.last[in.start])
	}
}

func (in *inflights) full() bool {
	return in.count >= in.maxCount || (in.maxBytes > 0 && in.bytes >= in.maxBytes)
}

func (in *inflights) reset() {
	in.start, in.count, in.bytes = 0, 0, 0
}
