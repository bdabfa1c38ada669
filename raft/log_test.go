package raft

import (
	"errors"
	"runtime"
	"slices"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
)

// newTestLog returns a log compacted at (snapIdx, snapTerm) and followed by
// entries of the given terms, all durable, with commit and apply indexes at
// the snapshot.
func newTestLog(snapIdx, snapTerm uint64, terms ...uint64) *raftLog {
	l := &raftLog{snap: SnapshotMeta{Index: snapIdx, Term: snapTerm}}
	l.ents = testEntries(snapIdx+1, terms...)
	l.stable = l.lastIndex()
	l.committed, l.applying, l.applied = snapIdx, snapIdx, snapIdx
	return l
}

// testEntries returns entries of the given terms starting at index first.
func testEntries(first uint64, terms ...uint64) []Entry {
	var ents []Entry
	for i, t := range terms {
		ents = append(ents, Entry{Term: t, Index: first + uint64(i), Type: EntryNormal})
	}
	return ents
}

// logTerms lists the terms of the entries after the snapshot point.
func logTerms(l *raftLog) []uint64 {
	var ts []uint64
	for _, e := range l.ents {
		ts = append(ts, e.Term)
	}
	return ts
}

func TestLogTermAroundSnapshot(t *testing.T) {
	l := newTestLog(5, 2, 2, 3, 3) // snapshot 2/5, then 2/6 3/7 3/8
	for _, tc := range []struct {
		i       uint64
		want    uint64
		wantErr error
	}{
		{0, 0, ErrCompacted},
		{4, 0, ErrCompacted},
		{5, 2, nil}, // the snapshot point itself has a known term
		{6, 2, nil},
		{7, 3, nil},
		{8, 3, nil},
		{9, 0, errUnavailable},
		{100, 0, errUnavailable},
	} {
		got, err := l.term(tc.i)
		if got != tc.want || !errors.Is(err, tc.wantErr) {
			t.Errorf("term(%d) = %d, %v; want %d, %v", tc.i, got, err, tc.want, tc.wantErr)
		}
	}
	for _, tc := range []struct {
		i, term uint64
		want    bool
	}{
		{4, 0, false}, {4, 2, false}, // compacted: unknown, never a match
		{5, 2, true}, {5, 1, false},
		{6, 2, true}, {6, 3, false},
		{8, 3, true},
		{9, 3, false}, {9, 0, false}, // beyond the log
	} {
		if got := l.matchTerm(tc.i, tc.term); got != tc.want {
			t.Errorf("matchTerm(%d, %d) = %v, want %v", tc.i, tc.term, got, tc.want)
		}
	}
	if l.firstIndex() != 6 || l.lastIndex() != 8 || l.lastTerm() != 3 {
		t.Errorf("first/last/lastTerm = %d/%d/%d, want 6/8/3", l.firstIndex(), l.lastIndex(), l.lastTerm())
	}

	// A log that is only a snapshot ends at the snapshot point.
	only := newTestLog(5, 2)
	if only.firstIndex() != 6 || only.lastIndex() != 5 || only.lastTerm() != 2 {
		t.Errorf("snapshot-only log: first/last/lastTerm = %d/%d/%d, want 6/5/2",
			only.firstIndex(), only.lastIndex(), only.lastTerm())
	}
	// A new log has the empty entry 0/0 as its snapshot point.
	empty := newTestLog(0, 0)
	if got, err := empty.term(0); got != 0 || err != nil || !empty.matchTerm(0, 0) {
		t.Errorf("empty log: term(0) = %d, %v; want 0, nil and a match", got, err)
	}
}

func TestLogIsUpToDate(t *testing.T) {
	l := newTestLog(0, 0, 1, 2, 2) // last entry 2/3
	for _, tc := range []struct {
		idx, term uint64
		want      bool
	}{
		{3, 2, true},  // same log end
		{4, 2, true},  // same term, longer
		{2, 2, false}, // same term, shorter
		{1, 3, true},  // higher last term wins whatever the length
		{9, 1, false}, // lower last term loses whatever the length
	} {
		if got := l.isUpToDate(tc.idx, tc.term); got != tc.want {
			t.Errorf("isUpToDate(%d, %d) against 2/3 = %v, want %v (Raft §5.4.1)", tc.idx, tc.term, got, tc.want)
		}
	}
}

// TestLogMaybeAppend covers the AppendEntries receiver rules of Raft
// Figure 2 on a log of terms [1 2 3] committed at 1.
func TestLogMaybeAppend(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		prevIdx, prevTerm, commit uint64
		ents                      []Entry
		wantOK                    bool
		wantLast, wantCommit      uint64
		wantTerms                 []uint64
		wantStable                uint64
	}{
		{
			name:    "prev term mismatch (rule 2)",
			prevIdx: 3, prevTerm: 2, commit: 3,
			wantCommit: 1, wantTerms: []uint64{1, 2, 3}, wantStable: 3,
		},
		{
			name:    "prev beyond the log (rule 2)",
			prevIdx: 4, prevTerm: 3, commit: 5, ents: testEntries(5, 3),
			wantCommit: 1, wantTerms: []uint64{1, 2, 3}, wantStable: 3,
		},
		{
			name:    "empty append at the end commits up to it",
			prevIdx: 3, prevTerm: 3, commit: 3,
			wantOK: true, wantLast: 3, wantCommit: 3, wantTerms: []uint64{1, 2, 3}, wantStable: 3,
		},
		{
			name:    "commit limited to the last new entry (rule 5)",
			prevIdx: 2, prevTerm: 2, commit: 3,
			wantOK: true, wantLast: 2, wantCommit: 2, wantTerms: []uint64{1, 2, 3}, wantStable: 3,
		},
		{
			name:    "append, leader commit beyond the new entries (rule 5)",
			prevIdx: 3, prevTerm: 3, commit: 10, ents: testEntries(4, 3, 3),
			wantOK: true, wantLast: 5, wantCommit: 5, wantTerms: []uint64{1, 2, 3, 3, 3}, wantStable: 3,
		},
		{
			name:    "append, leader commit within the new entries",
			prevIdx: 3, prevTerm: 3, commit: 4, ents: testEntries(4, 3, 3),
			wantOK: true, wantLast: 5, wantCommit: 4, wantTerms: []uint64{1, 2, 3, 3, 3}, wantStable: 3,
		},
		{
			name:    "commit never moves back",
			prevIdx: 0, prevTerm: 0, commit: 0, ents: testEntries(1, 1),
			wantOK: true, wantLast: 1, wantCommit: 1, wantTerms: []uint64{1, 2, 3}, wantStable: 3,
		},
		{
			name:    "stale append of present entries keeps the suffix (rule 3 needs a conflict)",
			prevIdx: 1, prevTerm: 1, commit: 3, ents: testEntries(2, 2),
			wantOK: true, wantLast: 2, wantCommit: 2, wantTerms: []uint64{1, 2, 3}, wantStable: 3,
		},
		{
			name:    "conflict truncates the suffix (rule 3), commit stops at the new entry",
			prevIdx: 1, prevTerm: 1, commit: 3, ents: testEntries(2, 4),
			wantOK: true, wantLast: 2, wantCommit: 2, wantTerms: []uint64{1, 4}, wantStable: 1,
		},
		{
			name:    "conflict in the middle of the batch (rules 3 and 4)",
			prevIdx: 1, prevTerm: 1, commit: 3, ents: testEntries(2, 2, 4, 4),
			wantOK: true, wantLast: 4, wantCommit: 3, wantTerms: []uint64{1, 2, 4, 4}, wantStable: 2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newTestLog(0, 0, 1, 2, 3)
			l.committed = 1
			last, ok := l.maybeAppend(tc.prevIdx, tc.prevTerm, tc.commit, tc.ents)
			if ok != tc.wantOK || last != tc.wantLast {
				t.Errorf("maybeAppend = %d, %v; want %d, %v", last, ok, tc.wantLast, tc.wantOK)
			}
			if l.committed != tc.wantCommit {
				t.Errorf("committed = %d, want %d", l.committed, tc.wantCommit)
			}
			if l.stable != tc.wantStable {
				t.Errorf("stable = %d, want %d", l.stable, tc.wantStable)
			}
			if diff := cmp.Diff(tc.wantTerms, logTerms(l)); diff != "" {
				t.Errorf("log terms (-want +got):\n%s", diff)
			}
			for i, e := range l.ents {
				if e.Index != uint64(i)+1 {
					t.Errorf("entry %d has index %d: the log is not contiguous", i, e.Index)
				}
			}
		})
	}
}

func TestLogMaybeAppendAtSnapshotPoint(t *testing.T) {
	l := newTestLog(5, 2, 3) // snapshot 2/5, then 3/6
	if _, ok := l.maybeAppend(4, 2, 6, testEntries(5, 2, 3)); ok {
		t.Error("append after a compacted prev index was accepted; its term is unknown")
	}
	if _, ok := l.maybeAppend(5, 3, 6, testEntries(6, 3)); ok {
		t.Error("append after the snapshot point with the wrong prev term was accepted")
	}
	last, ok := l.maybeAppend(5, 2, 7, testEntries(6, 3, 3))
	if !ok || last != 7 || l.committed != 7 || l.lastIndex() != 7 {
		t.Errorf("append after the snapshot point: last %d ok %v commit %d lastIndex %d; want 7 true 7 7",
			last, ok, l.committed, l.lastIndex())
	}
}

func TestLogMaybeAppendBelowCommitPanics(t *testing.T) {
	l := newTestLog(0, 0, 1, 1, 1)
	l.committed = 2
	defer func() {
		if recover() == nil {
			t.Error("replacing committed entry 2 did not panic")
		}
	}()
	l.maybeAppend(1, 1, 3, testEntries(2, 5))
}

func TestFindConflictByTerm(t *testing.T) {
	// Terms by index:   1 2 3 4 5 6
	full := newTestLog(0, 0, 1, 1, 2, 2, 4, 4)
	// The same log compacted at 2/1.
	compacted := newTestLog(2, 1, 2, 2, 4, 4)
	for _, tc := range []struct {
		name            string
		l               *raftLog
		idx, term       uint64
		wantIdx, wantTm uint64
	}{
		{"match at the probe", full, 6, 4, 6, 4},
		{"skip a whole term", full, 6, 3, 4, 2},
		{"term present below", full, 6, 2, 4, 2},
		{"skip two terms", full, 6, 1, 2, 1},
		{"nothing at or below the term", full, 6, 0, 0, 0},
		{"probe beyond the log is clamped", full, 10, 3, 4, 2},
		{"probe beyond the log, high term", full, 10, 5, 6, 4},
		{"probe in the middle", full, 4, 4, 4, 2},
		{"compacted: found after the snapshot", compacted, 6, 3, 4, 2},
		{"compacted: stops at the snapshot point", compacted, 6, 1, 2, 1},
		// The snapshot point's term is known, so the search ends there even
		// when that term exceeds the probe's (the doc comment: "The search
		// stops at the compaction point").
		{"compacted: below every term", compacted, 6, 0, 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i, term := tc.l.findConflictByTerm(tc.idx, tc.term)
			if i != tc.wantIdx || term != tc.wantTm {
				t.Errorf("findConflictByTerm(%d, %d) = %d, %d; want %d, %d", tc.idx, tc.term, i, term, tc.wantIdx, tc.wantTm)
			}
		})
	}
}

func TestLogSlice(t *testing.T) {
	l := newTestLog(2, 1)
	data := []byte("0123456789")
	for i := range uint64(5) { // entries 3..7, each charged 10+entryOverhead bytes
		l.appendLocal(Entry{Term: 1, Index: 3 + i, Type: EntryNormal, Data: data})
	}
	one := uint64(len(data)) + entryOverhead
	for _, tc := range []struct {
		name     string
		lo, hi   uint64
		maxBytes uint64
		want     []uint64 // indexes
	}{
		{"no limit", 3, 8, 1 << 30, []uint64{3, 4, 5, 6, 7}},
		{"zero limit still gives one entry", 3, 8, 0, []uint64{3}},
		{"limit below one entry gives one entry", 3, 8, one - 1, []uint64{3}},
		{"exactly one entry", 3, 8, one, []uint64{3}},
		{"just short of two", 3, 8, 2*one - 1, []uint64{3}},
		{"exactly two", 3, 8, 2 * one, []uint64{3, 4}},
		{"sub-range", 4, 6, 1 << 30, []uint64{4, 5}},
		{"sub-range limited", 5, 8, 2 * one, []uint64{5, 6}},
		{"empty range", 5, 5, 1 << 30, nil},
		{"empty range at the end", 8, 8, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ents, err := l.slice(tc.lo, tc.hi, tc.maxBytes)
			if err != nil {
				t.Fatalf("slice(%d, %d, %d): %v", tc.lo, tc.hi, tc.maxBytes, err)
			}
			var got []uint64
			for _, e := range ents {
				got = append(got, e.Index)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("slice(%d, %d, %d) indexes (-want +got):\n%s", tc.lo, tc.hi, tc.maxBytes, diff)
			}
			if cap(ents) != len(ents) {
				t.Errorf("slice returned cap %d > len %d: an append by the caller would overwrite the log", cap(ents), len(ents))
			}
		})
	}
	for _, lo := range []uint64{1, 2} {
		if _, err := l.slice(lo, 5, 1<<30); !errors.Is(err, ErrCompacted) {
			t.Errorf("slice(%d, 5) at or before the snapshot point 2: err %v, want ErrCompacted", lo, err)
		}
	}
	// Appending to a returned slice must not change the log.
	ents, _ := l.slice(3, 5, 1<<30)
	_ = append(ents, Entry{Term: 99, Index: 5})
	if got, _ := l.term(5); got != 1 {
		t.Errorf("term(5) = %d after the caller appended to a slice, want 1", got)
	}
	t.Run("beyond the log panics", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Error("slice(3, 9) on a log ending at 7 did not panic")
			}
		}()
		l.slice(3, 9, 1<<30)
	})
}

func TestLogUnstableAndStableTo(t *testing.T) {
	l := newTestLog(0, 0)
	l.appendLocal(testEntries(1, 1, 1, 2)...)
	if got := len(l.unstable()); got != 3 {
		t.Fatalf("unstable() has %d entries, want 3", got)
	}
	l.stableTo(2, 1)
	if l.stable != 2 || len(l.unstable()) != 1 {
		t.Errorf("after stableTo(2, 1): stable %d, %d unstable; want 2, 1", l.stable, len(l.unstable()))
	}
	l.stableTo(3, 1) // wrong term: the entry was replaced meanwhile
	l.stableTo(1, 1) // behind: no-op
	if l.stable != 2 {
		t.Errorf("stable = %d after stale stableTo calls, want 2", l.stable)
	}
	l.truncateAndAppend(testEntries(2, 3))
	if l.stable != 1 {
		t.Errorf("stable = %d after entry 2 was replaced, want 1", l.stable)
	}
}

func TestLogNextCommitted(t *testing.T) {
	l := newTestLog(0, 0, 1, 1, 1, 1)
	if l.hasNextCommitted() || l.nextCommitted(1<<30) != nil {
		t.Error("entries handed out before anything was committed")
	}
	l.commitTo(3)
	l.applying = 1
	ents := l.nextCommitted(1 << 30)
	if len(ents) != 2 || ents[0].Index != 2 || ents[1].Index != 3 {
		t.Errorf("nextCommitted = %v, want entries 2 and 3", ents)
	}
	if got := l.nextCommitted(0); len(got) != 1 || got[0].Index != 2 {
		t.Errorf("nextCommitted(0) = %v, want only entry 2", got)
	}
}

func TestLogCompact(t *testing.T) {
	l := newTestLog(0, 0, 1, 1, 2, 2, 3) // 1/1 1/2 2/3 2/4 3/5
	l.committed, l.applying, l.applied = 4, 4, 4
	for _, tc := range []struct {
		name string
		meta SnapshotMeta
	}{
		{"beyond applied", SnapshotMeta{Index: 5, Term: 3}},
		{"wrong term", SnapshotMeta{Index: 3, Term: 1}},
	} {
		if err := l.compact(&Snapshot{Meta: tc.meta}); err == nil {
			t.Errorf("compact %s (%d/%d) succeeded", tc.name, tc.meta.Term, tc.meta.Index)
		}
	}
	if l.snap.Index != 0 || len(l.ents) != 5 {
		t.Fatalf("a failed compact changed the log: snap %d, %d entries", l.snap.Index, len(l.ents))
	}

	s := &Snapshot{Meta: SnapshotMeta{Index: 3, Term: 2}, Data: []byte("image")}
	if err := l.compact(s); err != nil {
		t.Fatalf("compact to 2/3: %v", err)
	}
	if l.snap.Index != 3 || l.snap.Term != 2 || l.snapshot != s || l.firstIndex() != 4 || l.lastIndex() != 5 {
		t.Errorf("after compact: snap %+v, first %d, last %d; want 2/3, 4, 5", l.snap, l.firstIndex(), l.lastIndex())
	}
	if got, err := l.term(3); got != 2 || err != nil {
		t.Errorf("term(3) at the new snapshot point = %d, %v; want 2, nil", got, err)
	}
	if _, err := l.term(2); !errors.Is(err, ErrCompacted) {
		t.Errorf("term(2) after compact: err %v, want ErrCompacted", err)
	}
	if ents, err := l.slice(4, 6, 1<<30); err != nil || len(ents) != 2 || ents[0].Index != 4 {
		t.Errorf("slice(4, 6) after compact = %v, %v; want entries 4 and 5", ents, err)
	}
	if len(l.unstable()) != 0 {
		t.Errorf("compact made %d entries unstable", len(l.unstable()))
	}
	for _, i := range []uint64{2, 3} {
		err := l.compact(&Snapshot{Meta: SnapshotMeta{Index: i, Term: 1}})
		if !errors.Is(err, ErrCompacted) {
			t.Errorf("compact to %d, not after the compaction point 3: err %v, want ErrCompacted", i, err)
		}
	}

	// Only durable entries may be compacted.
	l.stable = 3
	l.applied, l.applying = 5, 5
	l.committed = 5
	if err := l.compact(&Snapshot{Meta: SnapshotMeta{Index: 4, Term: 2}}); err == nil {
		t.Error("compact beyond the durable index succeeded")
	}
}

func TestLogRestore(t *testing.T) {
	l := newTestLog(0, 0, 1, 1, 2)
	l.committed = 2
	s := &Snapshot{Meta: SnapshotMeta{Index: 10, Term: 4, ConfState: ConfState{Voters: []uint64{1, 2, 3}}}}
	l.restore(s)
	if l.firstIndex() != 11 || l.lastIndex() != 10 || l.lastTerm() != 4 {
		t.Errorf("after restore: first/last/lastTerm = %d/%d/%d, want 11/10/4", l.firstIndex(), l.lastIndex(), l.lastTerm())
	}
	if l.committed != 10 || l.stable != 10 || len(l.ents) != 0 || len(l.unstable()) != 0 {
		t.Errorf("after restore: committed %d stable %d, %d entries; want 10, 10, 0", l.committed, l.stable, len(l.ents))
	}
	if l.pendingSnapshot != s || l.snapshot != s {
		t.Error("restore did not keep the snapshot for the host and for lagging followers")
	}
	if _, err := l.term(9); !errors.Is(err, ErrCompacted) {
		t.Errorf("term(9) after restore: %v, want ErrCompacted", err)
	}
	if last, ok := l.maybeAppend(10, 4, 11, testEntries(11, 4)); !ok || last != 11 || l.committed != 11 {
		t.Errorf("append after the restored snapshot: %d, %v, commit %d; want 11, true, 11", last, ok, l.committed)
	}
}

// TestTruncateAndAppendCopies checks that the log never shares a backing
// array with entries it is given, nor overwrites entries it handed out.
func TestTruncateAndAppendCopies(t *testing.T) {
	t.Run("empty log keeps no alias to the caller's slice", func(t *testing.T) {
		buf := make([]Entry, 3, 8)
		copy(buf, testEntries(6, 3, 3, 3))
		sentinel := Entry{Term: 77, Index: 77}
		buf[2] = sentinel
		l := newTestLog(5, 2)
		l.truncateAndAppend(buf[:2])
		l.appendLocal(Entry{Term: 3, Index: 8})
		if !cmp.Equal(buf[2], sentinel) {
			t.Errorf("appendLocal wrote %v into the caller's backing array", buf[2])
		}
		buf[0].Term = 99
		if got, _ := l.term(6); got != 3 {
			t.Errorf("term(6) = %d after the caller changed its slice, want 3", got)
		}
	})
	t.Run("truncation keeps no alias to the caller's slice", func(t *testing.T) {
		l := newTestLog(0, 0, 1, 1, 1)
		in := testEntries(2, 2, 2)
		l.truncateAndAppend(in)
		in[0].Term, in[1].Term = 99, 99
		if diff := cmp.Diff([]uint64{1, 2, 2}, logTerms(l)); diff != "" {
			t.Errorf("log changed with the caller's slice (-want +got):\n%s", diff)
		}
	})
	t.Run("entries handed out are not overwritten", func(t *testing.T) {
		l := newTestLog(0, 0)
		l.appendLocal(testEntries(1, 1, 1, 1)...)
		handed := l.unstable() // as Ready.Entries would be
		before := slices.Clone(handed)
		l.truncateAndAppend(testEntries(2, 2, 2, 2))
		if diff := cmp.Diff(before, handed); diff != "" {
			t.Errorf("truncateAndAppend overwrote entries handed out earlier (-before +after):\n%s", diff)
		}
	})
	t.Run("maybeAppend keeps no alias to the message", func(t *testing.T) {
		l := newTestLog(0, 0, 1)
		msg := testEntries(2, 1, 1)
		if _, ok := l.maybeAppend(1, 1, 0, msg); !ok {
			t.Fatal("append rejected")
		}
		msg[0].Term = 99
		if got, _ := l.term(2); got != 1 {
			t.Errorf("term(2) = %d after the message's entries changed, want 1", got)
		}
	})
}

// TestTruncateAndAppendDoesNotCopyLog is a regression test for a bug found
// by BenchmarkProposal3Nodes: truncateAndAppend copied the whole log on every
// call, even when it truncated nothing, because l.ents[:keep:keep] capped the
// slice at its own length and so forced append to reallocate. A follower paid
// O(len(log)) per MsgApp, quadratic between compactions (99% of the bytes
// the benchmark allocated). A pure append may extend l.ents in place, which
// is safe because every slice the log hands out is capped at its length;
// only a real truncation needs a fresh array (TestTruncateAndAppendCopies).
func TestTruncateAndAppendDoesNotCopyLog(t *testing.T) {
	const n = 2000
	l := newTestLog(0, 0)
	in := testEntries(1, slices.Repeat([]uint64{1}, n)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range n {
		prevTerm := min(uint64(i), 1) // entry 0 is the empty 0/0
		if _, ok := l.maybeAppend(uint64(i), prevTerm, 0, in[i:i+1]); !ok {
			t.Fatalf("append of entry %d rejected", i+1)
		}
	}
	runtime.ReadMemStats(&after)
	// Amortised growth allocates about 2 * n entries in all; copying the
	// log on every append allocates about n*n/2.
	entrySize := uint64(unsafe.Sizeof(Entry{}))
	if got, limit := after.TotalAlloc-before.TotalAlloc, 20*n*entrySize; got > limit {
		t.Errorf("appending %d entries one at a time allocated %d bytes (%.0f entries' worth), want at most %d: "+
			"truncateAndAppend copies the whole log on every append", n, got, float64(got)/float64(entrySize), limit)
	}
}
