package wal

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/flotilla-dev/flotilla/raft"
	"pgregory.net/rapid"
)

// TestModel runs random sequences of Save, SaveSnapshot, InstallSnapshot,
// rejected calls, clean reopens and crashes against the naive model, with
// small segments so that rolls and segment deletion happen often. After
// every reopen the recovered state must equal the model's; after every step
// the WAL's bookkeeping must match the model and the directory.
func TestModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		o := testOpts()
		o.SegmentBytes = rapid.Int64Range(100, 3000).Draw(rt, "segmentBytes")
		o.KeepSnapshots = rapid.IntRange(1, 3).Draw(rt, "keepSnapshots")
		dir, err := os.MkdirTemp(t.TempDir(), "model")
		if err != nil {
			rt.Fatal(err)
		}
		defer os.RemoveAll(dir)
		w := mustOpen(rt, dir, o)
		defer func() { w.Close() }()
		var m model
		data := rapid.SliceOfN(rapid.Byte(), 0, 200)
		voters := rapid.SliceOfN(rapid.Uint64Range(1, 9), 0, 5)
		reopened := func(rt *rapid.T) {
			if d := stateDiff(m.state(), w.Recovered()); d != "" {
				rt.Fatalf("after reopen (-want +got):\n%s", d)
			}
		}
		rt.Repeat(map[string]func(*rapid.T){
			"save": func(rt *rapid.T) {
				h, ents := drawSave(rt, &m, data)
				if err := w.Save(h, ents, rapid.Bool().Draw(rt, "sync")); err != nil {
					rt.Fatalf("Save: %v", err)
				}
				m.save(h, ents)
			},
			"compact": func(rt *rapid.T) {
				if m.last() == m.snapIndex() {
					rt.Skip("nothing to compact")
				}
				i := rapid.Uint64Range(m.snapIndex()+1, m.last()).Draw(rt, "index")
				s := raft.Snapshot{Meta: raft.SnapshotMeta{Index: i, Term: m.term(i),
					ConfState: raft.ConfState{Voters: voters.Draw(rt, "voters")}}, Data: data.Draw(rt, "image")}
				if err := w.SaveSnapshot(s); err != nil {
					rt.Fatalf("SaveSnapshot: %v", err)
				}
				m.compact(s)
				if len(w.segs) > 1 && w.segs[0].maxIndex <= i {
					rt.Fatalf("segment %s holds nothing after %d but was kept", w.segs[0].name, i)
				}
			},
			"install": func(rt *rapid.T) {
				i := rapid.Uint64Range(max(m.snapIndex()+1, m.hs.Commit), m.last()+5).Draw(rt, "index")
				s := raft.Snapshot{Meta: raft.SnapshotMeta{Index: i, Term: rapid.Uint64Range(1, 9).Draw(rt, "term"),
					ConfState: raft.ConfState{Voters: voters.Draw(rt, "voters")}}, Data: data.Draw(rt, "image")}
				if err := w.InstallSnapshot(s); err != nil {
					rt.Fatalf("InstallSnapshot: %v", err)
				}
				m.install(s)
				if len(w.segs) != 1 {
					rt.Fatalf("%d segments after InstallSnapshot, want 1", len(w.segs))
				}
			},
			"rejected": func(rt *rapid.T) {
				before := w.Stats().Bytes
				if err := drawBadCall(rt, w, &m); !errors.Is(err, ErrInvalid) {
					rt.Fatalf("bad call: %v, want ErrInvalid", err)
				}
				if w.Stats().Bytes != before {
					rt.Fatal("a rejected call wrote")
				}
			},
			"reopen": func(rt *rapid.T) {
				if err := w.Close(); err != nil {
					rt.Fatal(err)
				}
				w = mustOpen(rt, dir, o)
				reopened(rt)
			},
			"crash": func(rt *rapid.T) {
				crash(w)
				w = mustOpen(rt, dir, o)
				reopened(rt)
			},
			"": func(rt *rapid.T) { checkBookkeeping(rt, w, &m, o) },
		})
		if err := w.Close(); err != nil {
			rt.Fatal(err)
		}
		w = mustOpen(rt, dir, o)
		reopened(rt)
	})
}

// drawSave draws a valid Save for the model's state: entries starting after
// the snapshot and the stored commit index, at most one past the last
// index, and a hard state whose commit is within the log.
func drawSave(rt *rapid.T, m *model, data *rapid.Generator[[]byte]) (raft.HardState, []raft.Entry) {
	n := rapid.IntRange(0, 6).Draw(rt, "entries")
	last := m.last()
	var ents []raft.Entry
	if n > 0 {
		start := rapid.Uint64Range(max(m.snapIndex(), m.hs.Commit)+1, last+1).Draw(rt, "start")
		term := rapid.Uint64Range(1, 4).Draw(rt, "term")
		for k := range uint64(n) {
			ents = append(ents, raft.Entry{Term: term + k/3, Index: start + k, Type: raft.EntryNormal, Data: data.Draw(rt, "data")})
		}
		last = start + uint64(n) - 1
	}
	var h raft.HardState
	if rapid.Bool().Draw(rt, "withHardState") {
		h = raft.HardState{
			Term:   rapid.Uint64Range(0, 9).Draw(rt, "hsTerm"),
			Vote:   rapid.Uint64Range(0, 3).Draw(rt, "vote"),
			Commit: rapid.Uint64Range(0, last).Draw(rt, "commit"),
		}
	}
	return h, ents
}

// drawBadCall makes one call that breaks the log's rules.
func drawBadCall(rt *rapid.T, w *WAL, m *model) error {
	last, snap := m.last(), m.snapIndex()
	kinds := []string{"gap", "commitBeyond", "snapshotBeyond", "notContiguous"}
	if snap > 0 {
		kinds = append(kinds, "beforeSnapshot", "snapshotNotNewer")
	}
	if m.hs.Commit > snap {
		kinds = append(kinds, "replaceCommitted")
	}
	switch rapid.SampledFrom(kinds).Draw(rt, "kind") {
	case "gap":
		return w.Save(raft.HardState{}, mkEnts(1, last+2, last+3), true)
	case "commitBeyond":
		return w.Save(raft.HardState{Term: 1, Commit: last + 1}, nil, true)
	case "snapshotBeyond":
		return w.SaveSnapshot(mkSnap(1, last+1, "x"))
	case "notContiguous":
		return w.Save(raft.HardState{}, append(mkEnts(1, last+1, last+1), mkEnts(1, last+3, last+3)...), true)
	case "beforeSnapshot":
		return w.Save(raft.HardState{}, mkEnts(1, snap, snap), true)
	case "snapshotNotNewer":
		return w.InstallSnapshot(mkSnap(1, snap, "x"))
	default: // replaceCommitted
		return w.Save(raft.HardState{}, mkEnts(9, m.hs.Commit, m.hs.Commit), true)
	}
}

// checkBookkeeping compares the WAL's in-memory view with the model and
// the directory.
func checkBookkeeping(rt *rapid.T, w *WAL, m *model, o Options) {
	tl := &w.terms
	if tl.snapIndex != m.snapIndex() || tl.last != m.last() || w.hs != m.hs {
		rt.Fatalf("WAL tracks snapshot %d, last %d, %+v; model %d, %d, %+v",
			tl.snapIndex, tl.last, w.hs, m.snapIndex(), m.last(), m.hs)
	}
	for i := m.snapIndex(); i <= m.last(); i++ {
		if got, ok := tl.term(i); !ok || got != m.term(i) {
			rt.Fatalf("term(%d) = %d, %v; model %d", i, got, ok, m.term(i))
		}
	}
	if _, ok := tl.term(m.last() + 1); ok {
		rt.Fatalf("term(%d) past the end is known", m.last()+1)
	}
	segs := segFiles(rt, w.dir)
	if st := w.Stats(); st.Segments != len(segs) {
		rt.Fatalf("Stats.Segments %d, %d files", st.Segments, len(segs))
	}
	snaps := snapFiles(rt, w.dir)
	if len(snaps) > o.KeepSnapshots {
		rt.Fatalf("%d snapshot files %v, keeping %d", len(snaps), snaps, o.KeepSnapshots)
	}
	if s := m.snap; s != nil && !slices.Contains(snaps, snapName(s.Meta.Term, s.Meta.Index)) {
		rt.Fatalf("current snapshot file missing from %v", snaps)
	}
	for _, f := range snaps {
		if filepath.Ext(f) != snapSuffix {
			rt.Fatalf("stray file %s", f)
		}
	}
}
