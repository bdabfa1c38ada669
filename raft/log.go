package raft

import (
	"errors"
	"fmt"
)

// ErrCompacted is returned when an index at or before the compaction point
// is asked for; the entries there exist only inside the snapshot.
var ErrCompacted = errors.New("raft: requested index is compacted")

// errUnavailable is returned for an index beyond the last entry.
var errUnavailable = errors.New("raft: requested index is beyond the log")

// raftLog is the node's log: a snapshot point followed by the entries after
// it, held in memory. The host mirrors it on stable storage through Ready.
//
// Invariants: snap.Index <= applied <= applying <= committed <= lastIndex();
// snap.Index <= stable <= inProgress <= lastIndex();
// ents[i].Index == snap.Index+1+i.
type raftLog struct {
	// snap is the compaction point: the last entry folded into a snapshot.
	snap SnapshotMeta
	// snapshot is the newest full snapshot, sent to followers that need
	// entries at or before snap.Index. It is nil until the first compaction.
	snapshot *Snapshot
	// pendingSnapshot is a snapshot received from the leader that the host has
	// not been handed yet; it is moved into the next Ready.
	pendingSnapshot *Snapshot
	ents            []Entry
	// stable is the last index the host has acknowledged as durable.
	stable uint64
	// inProgress is the last index handed to the host to write: entries up
	// to it are being written (or written, with durability not yet
	// reported); entries after it are due in the next Ready.
	inProgress uint64
	// committed is the highest index known to be committed (Raft §5.3).
	committed uint64
	// applying is the last index handed to the host to apply.
	applying uint64
	// applied is the last index the host has acknowledged as applied.
	applied uint64
}

func (l *raftLog) firstIndex() uint64 { return l.snap.Index + 1 }

func (l *raftLog) lastIndex() uint64 { return l.snap.Index + uint64(len(l.ents)) }

func (l *raftLog) lastTerm() uint64 {
	t, err := l.term(l.lastIndex())
	if err != nil {
		panic(fmt.Sprintf("raft: term of last index %d: %v", l.lastIndex(), err))
	}
	return t
}

// term returns the term of the entry at index i.
func (l *raftLog) term(i uint64) (uint64, error) {
	switch {
	case i == l.snap.Index:
		return l.snap.Term, nil
	case i < l.snap.Index:
		return 0, ErrCompacted
	case i > l.lastIndex():
		return 0, errUnavailable
	}
	return l.ents[i-l.snap.Index-1].Term, nil
}

// matchTerm reports whether the log holds an entry at index i with term t.
func (l *raftLog) matchTerm(i, t uint64) bool {
	lt, err := l.term(i)
	return err == nil && lt == t
}

// isUpToDate reports whether a log ending at (lastIdx, lastTerm) is at least
// as up-to-date as this one (Raft §5.4.1).
func (l *raftLog) isUpToDate(lastIdx, lastTerm uint64) bool {
	mine := l.lastTerm()
	return lastTerm > mine || (lastTerm == mine && lastIdx >= l.lastIndex())
}

// appendLocal appends entries that extend the log (a leader's proposals).
func (l *raftLog) appendLocal(ents ...Entry) {
	if len(ents) > 0 && ents[0].Index != l.lastIndex()+1 {
		panic(fmt.Sprintf("raft: appending index %d after last index %d", ents[0].Index, l.lastIndex()))
	}
	l.ents = append(l.ents, ents...)
}

// truncateAndAppend puts ents into the log, discarding any existing entries
// at or after ents[0].Index. The entries are copied: the log never shares a
// backing array with a message.
func (l *raftLog) truncateAndAppend(ents []Entry) {
	if len(ents) == 0 {
		return
	}
	first := ents[0].Index
	switch {
	case first <= l.committed:
		panic(fmt.Sprintf("raft: truncating at %d, below commit index %d", first, l.committed))
	case first <= l.snap.Index || first > l.lastIndex()+1:
		panic(fmt.Sprintf("raft: appending at %d to a log of [%d, %d]", first, l.firstIndex(), l.lastIndex()))
	}
	if first == l.lastIndex()+1 {
		// A plain append writes past the length of every slice handed out
		// in a Ready or a message, so it may share their backing array.
		l.ents = append(l.ents, ents...)
		return
	}
	// Truncation must not overwrite entries that an outstanding Ready or
	// an unsent message still refers to: copy into a fresh array.
	keep := first - l.snap.Index - 1
	l.ents = append(l.ents[:keep:keep], ents...)
	l.stable = min(l.stable, first-1)
	l.inProgress = min(l.inProgress, first-1)
}

// maybeAppend applies the AppendEntries receiver rules (Raft §5.3, Figure 2)
// and returns the index of the last entry the message proved to match.
func (l *raftLog) maybeAppend(prevIdx, prevTerm, commit uint64, ents []Entry) (uint64, bool) {
	if !l.matchTerm(prevIdx, prevTerm) {
		return 0, false
	}
	lastNew := prevIdx + uint64(len(ents))
	if c := l.findConflict(ents); c != 0 {
		l.truncateAndAppend(ents[c-ents[0].Index:])
	}
	// Only entries this message vouched for may be committed: anything after
	// lastNew could be a stale suffix from an older term.
	l.commitTo(min(commit, lastNew))
	return lastNew, true
}

// findConflict returns the index of the first entry of ents that is not in
// the log (missing or with another term), or 0 when all of them are present.
func (l *raftLog) findConflict(ents []Entry) uint64 {
	for i := range ents {
		if !l.matchTerm(ents[i].Index, ents[i].Term) {
			return ents[i].Index
		}
	}
	return 0
}

// findConflictByTerm returns the largest index at or below idx whose term is
// at most term, and that term. It lets a rejected AppendEntries skip whole
// terms instead of one index per round trip (Raft §5.3, "optimization").
// The search stops at the compaction point.
func (l *raftLog) findConflictByTerm(idx, term uint64) (uint64, uint64) {
	idx = min(idx, l.lastIndex())
	for idx > l.snap.Index {
		t, _ := l.term(idx)
		if t <= term {
			return idx, t
		}
		idx--
	}
	return l.snap.Index, l.snap.Term
}

// slice returns entries in [lo, hi), at most maxBytes of them but never fewer
// than one if the range is not empty.
func (l *raftLog) slice(lo, hi, maxBytes uint64) ([]Entry, error) {
	if lo <= l.snap.Index {
		return nil, ErrCompacted
	}
	if hi > l.lastIndex()+1 || lo > hi {
		panic(fmt.Sprintf("raft: slice [%d, %d) out of the log [%d, %d]", lo, hi, l.firstIndex(), l.lastIndex()))
	}
	ents := l.ents[lo-l.snap.Index-1 : hi-l.snap.Index-1]
	var size uint64
	for i := range ents {
		size += ents[i].size()
		if i > 0 && size > maxBytes {
			return ents[:i:i], nil
		}
	}
	return ents[:len(ents):len(ents)], nil
}

func (l *raftLog) commitTo(c uint64) {
	if c <= l.committed {
		return
	}
	if c > l.lastIndex() {
		panic(fmt.Sprintf("raft: commit index %d beyond last index %d", c, l.lastIndex()))
	}
	l.committed = c
}

// unstable returns the entries the host has not yet acknowledged as durable.
func (l *raftLog) unstable() []Entry {
	return l.ents[l.stable-l.snap.Index:]
}

// toWrite returns the entries not yet handed to the host for writing.
func (l *raftLog) toWrite() []Entry {
	return l.ents[l.inProgress-l.snap.Index:]
}

// stableTo records that the host made entries up to (i, t) durable. It is a
// no-op if the log no longer holds that entry (it was replaced meanwhile).
func (l *raftLog) stableTo(i, t uint64) {
	if i > l.stable && l.matchTerm(i, t) {
		l.stable = i
		l.inProgress = max(l.inProgress, i)
	}
}

// hasNextCommitted reports whether committed entries wait to be handed out.
func (l *raftLog) hasNextCommitted() bool {
	return l.committed > l.applying && l.applying >= l.snap.Index
}

// nextCommitted returns committed entries after applying, up to maxBytes.
func (l *raftLog) nextCommitted(maxBytes uint64) []Entry {
	if !l.hasNextCommitted() {
		return nil
	}
	ents, err := l.slice(l.applying+1, l.committed+1, maxBytes)
	if err != nil {
		panic(fmt.Sprintf("raft: committed entries after %d: %v", l.applying, err))
	}
	return ents
}

// compact folds the log up to index i into snap, which the host has taken.
func (l *raftLog) compact(snap *Snapshot) error {
	i := snap.Meta.Index
	if i <= l.snap.Index {
		return fmt.Errorf("%w: snapshot index %d is not after the compaction point %d", ErrCompacted, i, l.snap.Index)
	}
	if i > l.applied || i > l.stable {
		return fmt.Errorf("raft: snapshot index %d is beyond the applied index %d or the durable index %d", i, l.applied, l.stable)
	}
	t, _ := l.term(i)
	if t != snap.Meta.Term {
		return fmt.Errorf("raft: snapshot term %d does not match term %d of entry %d", snap.Meta.Term, t, i)
	}
	l.ents = append([]Entry(nil), l.ents[i-l.snap.Index:]...)
	l.snap = snap.Meta
	l.snapshot = snap
	return nil
}

// restore replaces the whole log with a snapshot received from the leader.
func (l *raftLog) restore(snap *Snapshot) {
	l.ents = nil
	l.snap = snap.Meta
	l.snapshot = snap
	l.pendingSnapshot = snap
	l.committed = snap.Meta.Index
	l.stable = snap.Meta.Index
	l.inProgress = snap.Meta.Index
}
