package wal

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/raft"
)

func TestOpenNewDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	w := mustOpen(t, dir, testOpts())
	checkState(t, w, raft.PersistedState{})
	if got := segFiles(t, dir); len(got) != 1 {
		t.Fatalf("new directory has segments %v, want one", got)
	}
	w = reopen(t, w)
	checkState(t, w, raft.PersistedState{})
	mustClose(t, w)
}

// op is one step of a table test; exactly one field is set.
type op struct {
	save    *saveArgs
	compact *raft.Snapshot
	install *raft.Snapshot
	reopen  bool
}

type saveArgs struct {
	hs   raft.HardState
	ents []raft.Entry
	sync bool
}

func save(hs raft.HardState, ents []raft.Entry) op { return op{save: &saveArgs{hs, ents, true}} }

func compactOp(s raft.Snapshot) op { return op{compact: &s} }

func installOp(s raft.Snapshot) op { return op{install: &s} }

var reopenOp = op{reopen: true}

func hs(term, vote, commit uint64) raft.HardState {
	return raft.HardState{Term: term, Vote: vote, Commit: commit}
}

// run applies ops to w and to a model, and checks Recovered after each
// reopen and at the end.
func run(t *testing.T, w *WAL, ops []op) *WAL {
	t.Helper()
	var m model
	for i, o := range ops {
		var err error
		switch {
		case o.save != nil:
			err = w.Save(o.save.hs, o.save.ents, o.save.sync)
			m.save(o.save.hs, o.save.ents)
		case o.compact != nil:
			err = w.SaveSnapshot(*o.compact)
			m.compact(*o.compact)
		case o.install != nil:
			err = w.InstallSnapshot(*o.install)
			m.install(*o.install)
		case o.reopen:
			w = reopen(t, w)
			if d := stateDiff(m.state(), w.Recovered()); d != "" {
				t.Fatalf("op %d: after reopen (-want +got):\n%s", i, d)
			}
		}
		if err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
	}
	w = reopen(t, w)
	if d := stateDiff(m.state(), w.Recovered()); d != "" {
		t.Fatalf("at the end (-want +got):\n%s", d)
	}
	return w
}

func TestSaveAndRecover(t *testing.T) {
	tests := []struct {
		name string
		ops  []op
	}{
		{"entries and hard state", []op{save(hs(1, 1, 0), mkEnts(1, 1, 3))}},
		{"hard state only", []op{save(hs(2, 3, 0), nil), save(hs(3, 0, 0), nil)}},
		{"appends across reopens", []op{save(hs(1, 1, 0), mkEnts(1, 1, 3)), reopenOp, save(hs(1, 1, 2), mkEnts(1, 4, 9)), reopenOp}},
		{"conflicting suffix truncated", []op{
			save(hs(1, 1, 2), mkEnts(1, 1, 6)),
			save(hs(2, 2, 2), mkEnts(2, 4, 5)), // replaces 4..6 with 4..5 of term 2
		}},
		{"truncation after a reopen", []op{
			save(hs(1, 1, 1), mkEnts(1, 1, 6)), reopenOp,
			save(hs(2, 2, 1), mkEnts(2, 2, 2)), reopenOp,
			save(raft.HardState{}, mkEnts(2, 3, 4)),
		}},
		{"compaction keeps later entries", []op{
			save(hs(1, 1, 5), mkEnts(1, 1, 8)),
			compactOp(mkSnap(1, 5, "image at 5")), reopenOp,
			save(hs(1, 1, 9), mkEnts(1, 9, 9)),
		}},
		{"compaction of everything", []op{
			save(hs(1, 1, 4), mkEnts(1, 1, 4)),
			compactOp(mkSnap(1, 4, "image at 4")),
			save(hs(1, 1, 4), mkEnts(1, 5, 6)),
		}},
		{"install discards the log", []op{
			save(hs(1, 1, 2), mkEnts(1, 1, 8)),
			installOp(mkSnap(3, 20, "leader image")),
			save(hs(3, 0, 20), mkEnts(3, 21, 22)), reopenOp,
		}},
		{"install behind the last entry", []op{
			save(hs(1, 1, 2), mkEnts(1, 1, 8)),
			installOp(mkSnap(2, 5, "leader image at 5")),
		}},
		{"install then compact", []op{
			installOp(mkSnap(2, 10, "a")),
			save(hs(2, 1, 12), mkEnts(2, 11, 14)),
			compactOp(mkSnap(2, 12, "b")),
		}},
		{"empty entry data", []op{save(hs(1, 1, 0), []raft.Entry{{Term: 1, Index: 1, Type: raft.EntryNormal}})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := mustOpen(t, t.TempDir(), testOpts())
			mustClose(t, run(t, w, tt.ops))
		})
	}
}

func TestSaveRejectsBadInput(t *testing.T) {
	setup := func(t *testing.T) (*WAL, model) {
		w := mustOpen(t, t.TempDir(), testOpts())
		var m model
		for _, o := range []op{save(hs(1, 1, 3), mkEnts(1, 1, 10)), compactOp(mkSnap(1, 2, "s"))} {
			var err error
			if o.save != nil {
				err = w.Save(o.save.hs, o.save.ents, true)
				m.save(o.save.hs, o.save.ents)
			} else {
				err = w.SaveSnapshot(*o.compact)
				m.compact(*o.compact)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		return w, m
	}
	big := make([]byte, MaxEntryBytes+1)
	tests := []struct {
		name string
		do   func(w *WAL) error
		want string
	}{
		{"gap", func(w *WAL) error { return w.Save(raft.HardState{}, mkEnts(1, 12, 12), true) }, "gap"},
		{"not contiguous", func(w *WAL) error {
			return w.Save(raft.HardState{}, append(mkEnts(1, 11, 11), mkEnts(1, 13, 13)...), true)
		}, "not contiguous"},
		{"at the snapshot", func(w *WAL) error { return w.Save(raft.HardState{}, mkEnts(2, 2, 3), true) }, "at or before the snapshot"},
		{"replaces committed", func(w *WAL) error { return w.Save(raft.HardState{}, mkEnts(2, 3, 3), true) }, "committed"},
		{"commit beyond the log", func(w *WAL) error { return w.Save(hs(1, 1, 11), nil, true) }, "beyond the last index"},
		{"oversized entry", func(w *WAL) error {
			return w.Save(raft.HardState{}, []raft.Entry{{Term: 1, Index: 11, Data: big}}, true)
		}, "more than the maximum"},
		{"snapshot not newer", func(w *WAL) error { return w.SaveSnapshot(mkSnap(1, 2, "again")) }, "not newer"},
		{"snapshot beyond the log", func(w *WAL) error { return w.SaveSnapshot(mkSnap(1, 11, "x")) }, "InstallSnapshot"},
		{"snapshot term mismatch", func(w *WAL) error { return w.SaveSnapshot(mkSnap(2, 5, "x")) }, "does not match"},
		{"snapshot at index 0", func(w *WAL) error { return w.InstallSnapshot(mkSnap(1, 0, "x")) }, "index 0"},
		{"install before commit", func(w *WAL) error {
			if err := w.Save(hs(1, 1, 8), nil, true); err != nil {
				return err
			}
			return w.InstallSnapshot(mkSnap(1, 7, "x"))
		}, "before the stored commit"},
		{"install not newer", func(w *WAL) error { return w.InstallSnapshot(mkSnap(1, 2, "x")) }, "not newer"},
		{"too many voters", func(w *WAL) error {
			s := mkSnap(1, 20, "x")
			s.Meta.ConfState.Voters = make([]uint64, maxVoters+1)
			return w.InstallSnapshot(s)
		}, "voters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, m := setup(t)
			before := w.Stats()
			err := tt.do(w)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrInvalid mentioning %q", err, tt.want)
			}
			if after := w.Stats(); after.Bytes != before.Bytes && tt.name != "install before commit" {
				t.Fatalf("a rejected call wrote %d bytes", after.Bytes-before.Bytes)
			}
			// The WAL stays usable and the stored data unchanged.
			if err := w.Save(raft.HardState{}, mkEnts(1, 11, 11), true); err != nil {
				t.Fatalf("Save after a rejected call: %v", err)
			}
			m.save(raft.HardState{}, mkEnts(1, 11, 11))
			if tt.name == "install before commit" {
				m.hs = hs(1, 1, 8)
			}
			w = reopen(t, w)
			checkState(t, w, m.state())
			mustClose(t, w)
		})
	}
}

func TestClusterMismatch(t *testing.T) {
	dir := t.TempDir()
	mustClose(t, mustOpen(t, dir, testOpts()))
	for _, o := range []Options{
		{ClusterID: 8, NodeID: 3},
		{ClusterID: 7, NodeID: 4},
	} {
		o.Logger = discard
		_, err := Open(dir, o)
		if !errors.Is(err, ErrClusterMismatch) {
			t.Fatalf("Open with cluster %d node %d: %v, want ErrClusterMismatch", o.ClusterID, o.NodeID, err)
		}
		for _, s := range []string{dir, "cluster 7 node 3", fmt.Sprintf("cluster %d node %d", o.ClusterID, o.NodeID)} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not name %q", err, s)
			}
		}
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, o := range []Options{{NodeID: 0}, {NodeID: 1, SegmentBytes: -1}, {NodeID: 1, KeepSnapshots: -2}} {
		if _, err := Open(t.TempDir(), o); !errors.Is(err, ErrInvalid) {
			t.Errorf("Open(%+v) = %v, want ErrInvalid", o, err)
		}
	}
}

func TestSyncAccounting(t *testing.T) {
	o := testOpts()
	o.NoSync = false
	var syncs []time.Duration
	o.OnSync = func(d time.Duration) { syncs = append(syncs, d) }
	w := mustOpen(t, t.TempDir(), o)
	tests := []struct {
		name          string
		hs            raft.HardState
		ents          []raft.Entry
		sync          bool
		fsyncs, write uint64
	}{
		{"batch with sync", hs(1, 1, 0), mkEnts(1, 1, 100), true, 1, 1},
		{"batch without sync", hs(1, 1, 50), mkEnts(1, 101, 200), false, 0, 1},
		{"nothing new with sync flushes the unsynced batch", hs(1, 1, 50), nil, true, 1, 0},
		{"nothing new, nothing unsynced", raft.HardState{}, nil, true, 0, 0},
		{"hard state only", hs(1, 1, 60), nil, true, 1, 1},
	}
	for _, tt := range tests {
		before, n := w.Stats(), len(syncs)
		if err := w.Save(tt.hs, tt.ents, tt.sync); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		after := w.Stats()
		if got := after.Fsyncs - before.Fsyncs; got != tt.fsyncs {
			t.Errorf("%s: %d fsyncs, want %d", tt.name, got, tt.fsyncs)
		}
		if got := after.Writes - before.Writes; got != tt.write {
			t.Errorf("%s: %d write calls, want %d", tt.name, got, tt.write)
		}
		if got := uint64(len(syncs) - n); got != tt.fsyncs {
			t.Errorf("%s: OnSync called %d times, want %d", tt.name, got, tt.fsyncs)
		}
	}
	st := w.Stats()
	if st.Entries != 200 || st.Records < 203 || st.Segments != 1 || st.SyncTime <= 0 {
		t.Errorf("stats %+v", st)
	}
	mustClose(t, w)
}

func TestClosed(t *testing.T) {
	w := mustOpen(t, t.TempDir(), testOpts())
	mustClose(t, w)
	for name, err := range map[string]error{
		"Save":            w.Save(hs(1, 1, 0), nil, true),
		"SaveSnapshot":    w.SaveSnapshot(mkSnap(1, 1, "")),
		"InstallSnapshot": w.InstallSnapshot(mkSnap(1, 1, "")),
		"Close":           w.Close(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

func TestSegmentsRollAndRecover(t *testing.T) {
	o := testOpts()
	o.SegmentBytes = 1024
	w := mustOpen(t, t.TempDir(), o)
	var m model
	rng := rand.New(rand.NewPCG(1, 2))
	for i := uint64(1); i <= 300; i++ {
		ents := []raft.Entry{{Term: 1, Index: i, Type: raft.EntryNormal, Data: make([]byte, rng.IntN(100))}}
		h := hs(1, 1, i-1)
		if err := w.Save(h, ents, i%3 == 0); err != nil {
			t.Fatal(err)
		}
		m.save(h, ents)
	}
	segs := segFiles(t, w.dir)
	if len(segs) < 10 {
		t.Fatalf("%d segments for ~40 KiB at 1 KiB each", len(segs))
	}
	for _, p := range segs[:len(segs)-1] {
		if fi, _ := os.Stat(p); fi.Size() < o.SegmentBytes || fi.Size() > o.SegmentBytes+200 {
			t.Errorf("%s has %d bytes, want about %d", p, fi.Size(), o.SegmentBytes)
		}
	}
	if st := w.Stats(); st.Segments != len(segs) || st.SegmentsCreated != uint64(len(segs)) {
		t.Errorf("stats count %d segments (%d created), directory has %d", st.Segments, st.SegmentsCreated, len(segs))
	}
	w = reopen(t, w)
	checkState(t, w, m.state())
	mustClose(t, w)
}

// TestRecoveredRestartsRaft feeds what the WAL recovered to raft.New: the
// state is one the core accepts.
func TestRecoveredRestartsRaft(t *testing.T) {
	w := mustOpen(t, t.TempDir(), testOpts())
	steps := []op{
		save(hs(2, 1, 0), mkEnts(1, 1, 5)),
		save(hs(2, 1, 4), mkEnts(2, 4, 8)),
		compactOp(mkSnap(2, 6, "image")),
		save(hs(2, 1, 8), nil),
	}
	w = run(t, w, steps)
	st := w.Recovered()
	n, err := raft.New(raft.Config{ID: 1, Peers: []uint64{1, 2, 3}, Rand: rand.New(rand.NewPCG(1, 1)), Restore: &st})
	if err != nil {
		t.Fatalf("raft.New with the recovered state: %v", err)
	}
	if s := n.Status(); s.Term != 2 || s.Commit != 8 || s.LastIndex != 8 || s.SnapshotIndex != 6 {
		t.Fatalf("restarted core: %+v", s)
	}
	mustClose(t, w)
}

func TestDirectoryLocked(t *testing.T) {
	dir := t.TempDir()
	w := mustOpen(t, dir, testOpts())
	if _, err := Open(dir, testOpts()); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second Open: %v, want ErrLocked naming %s", err, dir)
	}
	mustClose(t, w)
	mustClose(t, mustOpen(t, dir, testOpts()))
	// A failed Open releases the lock.
	if _, err := Open(dir, Options{ClusterID: 1, NodeID: 1, Logger: discard}); !errors.Is(err, ErrClusterMismatch) {
		t.Fatal(err)
	}
	mustClose(t, mustOpen(t, dir, testOpts()))
}
