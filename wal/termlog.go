package wal

import (
	"sort"

	"github.com/flotilla-dev/flotilla/raft"
)

// termLog tracks the index range and the terms of the stored entries without
// keeping the entries: terms change rarely, so it keeps runs of equal terms.
// The WAL uses it to validate Save and SaveSnapshot arguments.
//
// Invariants: snapIndex <= last; runs are in ascending index order, each run
// starts after the previous one, runs[0].index == snapIndex+1 when there are
// entries, and every run starts at or before last.
type termLog struct {
	// snapIndex and snapTerm identify the last entry the snapshot covers
	// (0, 0 without a snapshot).
	snapIndex, snapTerm uint64
	// last is the last stored index, snapIndex when no entry is stored.
	last uint64
	// runs[i] says entries from runs[i].index on have runs[i].term, up to
	// the next run's start.
	runs []termRun
}

type termRun struct{ index, term uint64 }

// term returns the term of entry i, and false when i is neither stored nor
// the snapshot's last index.
func (t *termLog) term(i uint64) (uint64, bool) {
	switch {
	case i == t.snapIndex:
		return t.snapTerm, true
	case i < t.snapIndex || i > t.last:
		return 0, false
	}
	k := sort.Search(len(t.runs), func(k int) bool { return t.runs[k].index > i })
	return t.runs[k-1].term, true
}

// append stores contiguous entries whose first index is in
// (snapIndex, last+1], replacing the entries from that index on.
func (t *termLog) append(ents []raft.Entry) {
	if len(ents) == 0 {
		return
	}
	t.truncate(ents[0].Index - 1)
	for i := range ents {
		if n := len(t.runs); n == 0 || t.runs[n-1].term != ents[i].Term {
			t.runs = append(t.runs, termRun{index: ents[i].Index, term: ents[i].Term})
		}
	}
	t.last = ents[len(ents)-1].Index
}

// truncate drops the entries after index last.
func (t *termLog) truncate(last uint64) {
	k := sort.Search(len(t.runs), func(k int) bool { return t.runs[k].index > last })
	t.runs = t.runs[:k]
	t.last = last
}

// compact folds the entries up to i (at most last) into a snapshot with
// term term.
func (t *termLog) compact(i, term uint64) {
	// k is the first run that starts after i.
	k := sort.Search(len(t.runs), func(k int) bool { return t.runs[k].index > i })
	if i < t.last && k > 0 && (k == len(t.runs) || t.runs[k].index > i+1) {
		// Run k-1 holds entry i+1: it now starts there.
		k--
		t.runs[k].index = i + 1
	}
	t.runs = append([]termRun(nil), t.runs[k:]...)
	t.snapIndex, t.snapTerm = i, term
	t.last = max(t.last, i)
}

// reset discards every entry: the log now starts after snapshot (i, term).
func (t *termLog) reset(i, term uint64) {
	*t = termLog{snapIndex: i, snapTerm: term, last: i}
}
