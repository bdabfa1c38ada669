// Package quorum holds the quorum arithmetic of Raft: which log index a set of
// voters has committed and whether an election is won, lost or still open.
//
// Everything that counts votes or acknowledgements in package raft goes
// through a Joint configuration, so that joint consensus (Raft dissertation
// §4.3) only adds a second majority instead of rewriting the callers.
package quorum

import (
	"slices"
	"strconv"
	"strings"
)

// VoteResult is the outcome of counting votes.
type VoteResult uint8

const (
	// VotePending means neither side has a quorum yet.
	VotePending VoteResult = iota + 1
	// VoteLost means enough voters rejected that a quorum can no longer be reached.
	VoteLost
	// VoteWon means a quorum granted the vote.
	VoteWon
)

func (r VoteResult) String() string {
	switch r {
	case VotePending:
		return "pending"
	case VoteLost:
		return "lost"
	case VoteWon:
		return "won"
	}
	return "VoteResult(" + strconv.Itoa(int(r)) + ")"
}

// AckedIndexer reports the highest log index a voter is known to hold.
// ok is false when nothing is known about the voter.
type AckedIndexer interface {
	AckedIndex(id uint64) (idx uint64, ok bool)
}

// MapAckIndexer is an AckedIndexer backed by a map, handy in tests.
type MapAckIndexer map[uint64]uint64

// AckedIndex implements AckedIndexer.
func (m MapAckIndexer) AckedIndex(id uint64) (uint64, bool) {
	idx, ok := m[id]
	return idx, ok
}

// Majority is a set of voters decided by simple majority. The zero value (no
// voters) is a valid, empty configuration: it commits everything and wins every
// vote, so that an empty half of a Joint configuration never constrains it.
type Majority map[uint64]struct{}

// NewMajority returns a Majority of the given voter IDs.
func NewMajority(ids ...uint64) Majority {
	m := make(Majority, len(ids))
	for _, id := range ids {
		m[id] = struct{}{}
	}
	return m
}

// IDs returns the voters in ascending order.
func (m Majority) IDs() []uint64 {
	ids := make([]uint64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// String renders the voters as "(1 2 3)".
func (m Majority) String() string {
	var b strings.Builder
	b.WriteByte('(')
	for i, id := range m.IDs() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatUint(id, 10))
	}
	b.WriteByte(')')
	return b.String()
}

// CommittedIndex returns the largest index that a majority of the voters has
// acknowledged. Voters unknown to l count as having acknowledged index 0.
// An empty Majority returns the maximum uint64, so that it never holds a
// Joint configuration back.
func (m Majority) CommittedIndex(l AckedIndexer) uint64 {
	n := len(m)
	if n == 0 {
		return ^uint64(0)
	}
	// Small clusters are the common case; avoid a heap allocation for them.
	var stack [7]uint64
	var acked []uint64
	if n <= len(stack) {
		acked = stack[:0]
	} else {
		acked = make([]uint64, 0, n)
	}
	for id := range m {
		idx, _ := l.AckedIndex(id)
		acked = append(acked, idx)
	}
	slices.Sort(acked)
	// With the indexes ascending, the element at n - (n/2 + 1) is held by
	// n/2 + 1 voters (itself and all above it): the largest quorum-held index.
	return acked[n-(n/2+1)]
}

// VoteResult counts votes: votes[id] is true for a grant, false for a
// rejection, and missing for a voter that has not answered.
func (m Majority) VoteResult(votes map[uint64]bool) VoteResult {
	if len(m) == 0 {
		return VoteWon
	}
	granted, missing := 0, 0
	for id := range m {
		v, ok := votes[id]
		switch {
		case !ok:
			missing++
		case v:
			granted++
		}
	}
	q := len(m)/2 + 1
	switch {
	case granted >= q:
		return VoteWon
	case granted+missing >= q:
		return VotePending
	default:
		return VoteLost
	}
}

// Joint is a joint configuration (Raft dissertation §4.3): decisions need a
// majority of both halves. Outside a membership change the second half is
// empty and Joint behaves exactly like its first Majority.
type Joint [2]Majority

// IDs returns the union of both halves' voters in ascending order.
func (j Joint) IDs() []uint64 {
	seen := make(map[uint64]struct{}, len(j[0])+len(j[1]))
	for _, m := range j {
		for id := range m {
			seen[id] = struct{}{}
		}
	}
	return Majority(seen).IDs()
}

// Contains reports whether id is a voter in either half.
func (j Joint) Contains(id uint64) bool {
	_, a := j[0][id]
	_, b := j[1][id]
	return a || b
}

// String renders the configuration as "(1 2 3)" or "(1 2 3)&&(2 3 4)".
func (j Joint) String() string {
	if len(j[1]) == 0 {
		return j[0].String()
	}
	return j[0].String() + "&&" + j[1].String()
}

// CommittedIndex returns the largest index committed by both halves.
func (j Joint) CommittedIndex(l AckedIndexer) uint64 {
	return min(j[0].CommittedIndex(l), j[1].CommittedIndex(l))
}

// VoteResult returns VoteWon only if both halves won, VoteLost if either lost.
func (j Joint) VoteResult(votes map[uint64]bool) VoteResult {
	a, b := j[0].VoteResult(votes), j[1].VoteResult(votes)
	switch {
	case a == b:
		return a
	case a == VoteLost || b == VoteLost:
		return VoteLost
	default:
		return VotePending
	}
}
