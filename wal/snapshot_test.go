package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/raft"
)

// fillSegments saves entries 1..n, one per Save, into small segments.
func fillSegments(t *testing.T, w *WAL, m *model, lo, hi uint64) {
	t.Helper()
	for i := lo; i <= hi; i++ {
		ents := mkEnts(1, i, i)
		if err := w.Save(hs(1, 1, i), ents, false); err != nil {
			t.Fatal(err)
		}
		m.save(hs(1, 1, i), ents)
	}
}

func smallSegments() Options {
	o := testOpts()
	o.SegmentBytes = 256
	return o
}

func TestSaveSnapshotDeletesCoveredSegments(t *testing.T) {
	w := mustOpen(t, t.TempDir(), smallSegments())
	var m model
	fillSegments(t, w, &m, 1, 60)
	before := append([]segment(nil), w.segs...)
	if len(before) < 6 {
		t.Fatalf("only %d segments", len(before))
	}
	// Compact to the last entry of the third segment: exactly the first
	// three are wholly covered.
	idx := before[2].maxIndex
	s := mkSnap(1, idx, "image")
	if err := w.SaveSnapshot(s); err != nil {
		t.Fatal(err)
	}
	m.compact(s)
	// (The marker may have rolled into a new segment at the end.)
	if got, want := segNames(w.segs), segNames(before[3:]); !slices.Equal(got[:len(want)], want) {
		t.Fatalf("segments after compaction to %d:\n got %v\nwant %v", idx, got, want)
	}
	if got := len(segFiles(t, w.dir)); got != len(w.segs) {
		t.Fatalf("%d segment files on disk, %d in the WAL", got, len(w.segs))
	}
	// A snapshot in the middle of a segment keeps it.
	s2 := mkSnap(1, before[4].maxIndex-1, "image 2")
	if err := w.SaveSnapshot(s2); err != nil {
		t.Fatal(err)
	}
	m.compact(s2)
	if w.segs[0].name != before[4].name {
		t.Fatalf("first segment %s, want %s (it still holds entry %d)", w.segs[0].name, before[4].name, before[4].maxIndex)
	}
	fillSegments(t, w, &m, 61, 70)
	w = reopen(t, w)
	checkState(t, w, m.state())
	mustClose(t, w)
}

func segNames(segs []segment) []string {
	var out []string
	for _, s := range segs {
		out = append(out, s.name)
	}
	return out
}

func TestInstallSnapshotDiscardsLog(t *testing.T) {
	w := mustOpen(t, t.TempDir(), smallSegments())
	var m model
	fillSegments(t, w, &m, 1, 40)
	s := mkSnap(4, 50, "leader image")
	if err := w.InstallSnapshot(s); err != nil {
		t.Fatal(err)
	}
	m.install(s)
	if len(w.segs) != 1 {
		t.Fatalf("%d segments after install, want only the open one", len(w.segs))
	}
	w = reopen(t, w)
	checkState(t, w, m.state())
	if err := w.Save(hs(4, 0, 51), mkEnts(4, 51, 51), true); err != nil {
		t.Fatal(err)
	}
	m.save(hs(4, 0, 51), mkEnts(4, 51, 51))
	w = reopen(t, w)
	checkState(t, w, m.state())
	mustClose(t, w)
}

func TestSnapshotFilesPruned(t *testing.T) {
	o := testOpts()
	w := mustOpen(t, t.TempDir(), o)
	var m model
	fillSegments(t, w, &m, 1, 10)
	for i := uint64(2); i <= 10; i += 2 {
		if err := w.SaveSnapshot(mkSnap(1, i, "x")); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{snapName(1, 8), snapName(1, 10)}
	if got := snapFiles(t, w.dir); !slices.Equal(got, want) {
		t.Fatalf("snapshot files %v, want %v", got, want)
	}
	mustClose(t, w)
}

// TestSaveSnapshotCrashPoints stops SaveSnapshot and InstallSnapshot at
// every step, abandons the WAL as a killed process would, and checks that
// the directory recovers either the old or the new state, with no leftover
// files.
func TestSaveSnapshotCrashPoints(t *testing.T) {
	tests := []struct {
		point   string
		install bool
		// torn cuts the snapshot's .tmp file to half (a crash mid-write).
		torn bool
		// durable says the snapshot is recovered.
		durable bool
		// tearMarker cuts the last 5 bytes of the newest segment: the
		// marker's write was lost in part (power failed before its fsync).
		tearMarker bool
	}{
		{"snap-written", false, true, false, false},
		{"snap-written", true, false, false, false},
		{"snap-renamed", false, false, false, false},
		{"snap-renamed", true, false, false, false},
		{"marker-written", false, false, true, false},
		{"marker-written", true, false, true, false},
		{"marker-written", false, false, false, true},
		{"marker-written", true, false, false, true},
		{"marker-synced", false, false, true, false},
		{"marker-synced", true, false, true, false},
		{"segment-deleted", false, false, true, false},
		{"segment-deleted", true, false, true, false},
	}
	for _, tt := range tests {
		name := tt.point
		if tt.install {
			name += "/install"
		}
		if tt.tearMarker {
			name += "/torn"
		}
		t.Run(name, func(t *testing.T) {
			o := smallSegments()
			o.NoSync = false
			w := mustOpen(t, t.TempDir(), o)
			var m model
			fillSegments(t, w, &m, 1, 30)
			if err := w.SaveSnapshot(mkSnap(1, 5, "older")); err != nil {
				t.Fatal(err)
			}
			m.compact(mkSnap(1, 5, "older"))
			old := m
			s := mkSnap(1, 20, "newer image")
			do, apply := w.SaveSnapshot, m.compact
			if tt.install {
				s = mkSnap(2, 40, "leader image")
				do, apply = w.InstallSnapshot, m.install
			}
			apply(s)
			w.crashHook = func(p string) error {
				if p == tt.point {
					return errInjected
				}
				return nil
			}
			err := do(s)
			if !errors.Is(err, errInjected) && tt.point != "segment-deleted" {
				t.Fatalf("got %v, want the injected crash", err)
			}
			crash(w)
			if tt.torn {
				tmp := filepath.Join(w.dir, snapDirName, snapName(s.Meta.Term, s.Meta.Index)+tmpSuffix)
				fi, err := os.Stat(tmp)
				if err != nil {
					t.Fatal(err)
				}
				os.Truncate(tmp, fi.Size()/2)
			}
			if tt.tearMarker {
				// The marker's last bytes never reached the disk: zeros, in
				// the preallocated segment.
				segs := segFiles(t, w.dir)
				last := segs[len(segs)-1]
				end := recordsEnd(t, last)
				fh, _ := os.OpenFile(last, os.O_WRONLY, 0)
				fh.WriteAt(make([]byte, 5), end-5)
				fh.Close()
			}
			w2 := mustOpen(t, w.dir, o)
			want := old.state()
			if tt.durable {
				want = m.state()
			}
			checkState(t, w2, want)
			for _, f := range snapFiles(t, w.dir) {
				if strings.HasSuffix(f, tmpSuffix) {
					t.Errorf("leftover %s", f)
				}
			}
			if files := snapFiles(t, w.dir); !tt.durable && slices.Contains(files, snapName(s.Meta.Term, s.Meta.Index)) {
				t.Errorf("the unrecorded snapshot file %s was kept", snapName(s.Meta.Term, s.Meta.Index))
			}
			// The recovered WAL works and a later snapshot cleans up.
			next := w2.terms.last + 1
			if err := w2.Save(hs(3, 0, next), mkEnts(3, next, next), true); err != nil {
				t.Fatal(err)
			}
			if err := w2.SaveSnapshot(mkSnap(3, next, "latest")); err != nil {
				t.Fatal(err)
			}
			if len(w2.segs) != 1 && w2.segs[0].maxIndex <= next {
				t.Errorf("covered segments remain: %v", segNames(w2.segs))
			}
			mustClose(t, w2)
		})
	}
}

func TestSnapshotFileDamage(t *testing.T) {
	setup := func(t *testing.T) (*WAL, string) {
		w := mustOpen(t, t.TempDir(), testOpts())
		var m model
		fillSegments(t, w, &m, 1, 10)
		for _, i := range []uint64{4, 8} {
			if err := w.SaveSnapshot(mkSnap(1, i, "image of the state")); err != nil {
				t.Fatal(err)
			}
		}
		mustClose(t, w)
		return w, filepath.Join(w.dir, snapDirName, snapName(1, 8))
	}
	t.Run("missing", func(t *testing.T) {
		w, cur := setup(t)
		os.Remove(cur)
		_, err := Open(w.dir, w.opts)
		ce := wantCorrupt(t, err, cur)
		if !strings.Contains(ce.Reason, "missing") {
			t.Fatalf("reason %q does not say the file is missing", ce.Reason)
		}
	})
	t.Run("every byte of the current file", func(t *testing.T) {
		w, cur := setup(t)
		orig, _ := os.ReadFile(cur)
		for i := range orig {
			b := slices.Clone(orig)
			b[i] ^= 0x10
			os.WriteFile(cur, b, 0o644)
			_, err := Open(w.dir, w.opts)
			wantCorrupt(t, err, cur)
		}
		for _, n := range []int{0, 10, len(orig) - 1} {
			os.WriteFile(cur, orig[:n], 0o644)
			_, err := Open(w.dir, w.opts)
			wantCorrupt(t, err, cur)
		}
	})
	t.Run("a different snapshot under the same name", func(t *testing.T) {
		w, cur := setup(t)
		w2 := &WAL{dir: t.TempDir(), opts: w.opts, log: discard}
		os.MkdirAll(filepath.Join(w2.dir, snapDirName), 0o755)
		if _, err := w2.writeSnapFile(new(mkSnap(1, 8, "other data"))); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(w2.dir, snapDirName, snapName(1, 8)))
		os.WriteFile(cur, b, 0o644)
		_, err := Open(w.dir, w.opts)
		ce := wantCorrupt(t, err, cur)
		if !strings.Contains(ce.Reason, "recorded in the log") {
			t.Fatalf("reason %q", ce.Reason)
		}
	})
	t.Run("older file damaged is not read", func(t *testing.T) {
		w, _ := setup(t)
		older := filepath.Join(w.dir, snapDirName, snapName(1, 4))
		os.WriteFile(older, []byte("garbage"), 0o644)
		w2 := mustOpen(t, w.dir, w.opts)
		if s := w2.Recovered().Snapshot; s == nil || s.Meta.Index != 8 {
			t.Fatalf("recovered snapshot %+v, want 8", s)
		}
		mustClose(t, w2)
	})
}

func TestDecodeSnapBounds(t *testing.T) {
	w := &WAL{opts: testOpts()}
	s := mkSnap(1, 8, "data")
	hdr := w.snapHeader(&s)
	m := marker{index: 8, term: 1}
	tests := []struct {
		name string
		b    []byte
	}{
		{"huge voter count", func() []byte {
			b := slices.Clone(hdr)
			b[40], b[41], b[42], b[43] = 0xff, 0xff, 0xff, 0x7f
			return append(b, make([]byte, 100)...)
		}()},
		{"huge data length", func() []byte {
			b := slices.Clone(hdr)
			for i := len(b) - 8; i < len(b); i++ {
				b[i] = 0xff
			}
			return append(b, make([]byte, 100)...)
		}()},
		{"short", hdr[:20]},
	}
	for _, tt := range tests {
		var err error
		n := allocBytes(func() {
			_, err = w.decodeSnap(bytes.NewReader(tt.b), int64(len(tt.b)), m)
		})
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: %v, want ErrCorrupt", tt.name, err)
		}
		if n > 64<<10 {
			t.Errorf("%s: decoding allocated %d bytes", tt.name, n)
		}
	}
}

// A joint configuration with learners survives a snapshot file round trip,
// and a file of format 1 (voters only) is still read.
func TestSnapshotConfStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	w := mustOpen(t, dir, testOpts())
	s := raft.Snapshot{Meta: raft.SnapshotMeta{Index: 7, Term: 2, ConfState: raft.ConfState{
		Voters: []uint64{1, 3, 4}, VotersOutgoing: []uint64{1, 2, 3}, Learners: []uint64{9}, AutoLeave: true,
	}}, Data: []byte("image")}
	if err := w.InstallSnapshot(s); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = mustOpen(t, dir, testOpts())
	got := w.Recovered().Snapshot
	if got == nil || !slices.Equal(got.Meta.ConfState.Voters, s.Meta.ConfState.Voters) ||
		!slices.Equal(got.Meta.ConfState.VotersOutgoing, s.Meta.ConfState.VotersOutgoing) ||
		!slices.Equal(got.Meta.ConfState.Learners, s.Meta.ConfState.Learners) || !got.Meta.ConfState.AutoLeave {
		t.Fatalf("recovered %+v, want %+v", got, s.Meta)
	}
	w.Close()

	// Format 1: the same header with magic ...\x01, no lists after the
	// voters. Built by hand from the format-2 encoding of a voters-only
	// snapshot.
	v1 := raft.Snapshot{Meta: raft.SnapshotMeta{Index: 3, Term: 1, ConfState: raft.ConfState{Voters: []uint64{1, 2, 3}}}, Data: []byte("old")}
	w2 := &WAL{opts: testOpts()}
	hdr := w2.snapHeader(&v1)
	copy(hdr, snapMagicV1)
	hdr = append(hdr[:snapFixed+24], hdr[snapFixed+24+8:]...) // drop the two list counts
	b := append(hdr, v1.Data...)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	sum := binary.LittleEndian.Uint32(b[len(b)-4:])
	got2, err := w2.decodeSnap(bytes.NewReader(b), int64(len(b)), marker{index: 3, term: 1, crc: sum})
	if err != nil {
		t.Fatalf("reading a format-1 snapshot: %v", err)
	}
	if !slices.Equal(got2.Meta.ConfState.Voters, []uint64{1, 2, 3}) || string(got2.Data) != "old" {
		t.Errorf("format-1 snapshot read as %+v %q", got2.Meta, got2.Data)
	}
}
