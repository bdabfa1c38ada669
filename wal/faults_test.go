package wal

import (
	"errors"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/raft"
)

var long = flag.Bool("wal.long", false, "run the exhaustive fault sweeps (every bit of every segment)")

// fixture is a closed WAL directory of several segments whose last write
// was one Save of lastEnts followed by lastHS.
type fixture struct {
	dir      string
	opts     Options
	before   model // the state before the last Save
	lastEnts []raft.Entry
	lastHS   raft.HardState
	last     string // path of the newest segment
	// size holds each segment file's size as the WAL left it, for a
	// preallocated fixture; nil for a trimmed one.
	size map[string]int64
}

// write replaces segment file path with b, followed, in a preallocated
// fixture, by zeros up to the size the WAL gave the file.
func (f *fixture) write(path string, b []byte) {
	if n := f.size[path]; n > int64(len(b)) {
		b = append(slices.Clone(b), make([]byte, n-int64(len(b)))...)
	}
	os.WriteFile(path, b, 0o644)
}

// shapes names the two on-disk shapes of a segment: trimmed to its records
// (NoPreallocate, or a WAL from before preallocation) and preallocated
// (zeros after the records up to SegmentBytes).
var shapes = []struct {
	name     string
	prealloc bool
}{{"trimmed", false}, {"preallocated", true}}

func (f *fixture) after(entries int, withHS bool) raft.PersistedState {
	m := f.before
	m.save(raft.HardState{}, f.lastEnts[:entries])
	if withHS {
		m.hs = f.lastHS
	}
	return m.state()
}

// newFixture returns a trimmed fixture (see shapes).
func newFixture(t *testing.T) *fixture { return newShapedFixture(t, false) }

// newShapedFixture returns a fixture in the preallocated shape the WAL
// writes, or trimmed to its records (and NoPreallocate, so that reopening
// keeps the shape).
func newShapedFixture(t *testing.T, prealloc bool) *fixture {
	o := testOpts()
	o.SegmentBytes = 512
	o.NoPreallocate = !prealloc
	f := &fixture{dir: t.TempDir(), opts: o}
	w := mustOpen(t, f.dir, o)
	m := &f.before
	do := func(h raft.HardState, ents []raft.Entry) {
		if err := w.Save(h, ents, true); err != nil {
			t.Fatal(err)
		}
		m.save(h, ents)
	}
	for i := uint64(1); i <= 30; i += 3 {
		do(hs(1, 1, i/2), mkEnts(1, i, i+2))
	}
	s := mkSnap(1, 12, "snapshot at 12")
	if err := w.SaveSnapshot(s); err != nil {
		t.Fatal(err)
	}
	m.compact(s)
	do(hs(2, 2, 25), mkEnts(2, 26, 33)) // replaces 26..30
	do(hs(2, 2, 30), nil)
	f.lastEnts, f.lastHS = mkEnts(2, 34, 37), hs(2, 2, 36)
	if err := w.Save(f.lastHS, f.lastEnts, true); err != nil {
		t.Fatal(err)
	}
	mustClose(t, w)
	segs := segFiles(t, f.dir)
	if len(segs) < 4 {
		t.Fatalf("fixture has %d segments, want several", len(segs))
	}
	f.last = segs[len(segs)-1]
	if prealloc {
		f.size = map[string]int64{}
		for _, p := range segs {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			f.size[p] = fi.Size()
		}
		if f.size[f.last] <= recordsEnd(t, f.last) {
			t.Fatalf("the newest segment has no free space: %d bytes, records to %d", f.size[f.last], recordsEnd(t, f.last))
		}
	} else {
		trimSegments(t, f.dir)
	}
	return f
}

// TestTornTailEveryOffset cuts the last write (four entries and a hard
// state, five records) at every byte offset, or zeroes it from that offset
// on, in both segment shapes, and checks that Open succeeds with exactly
// the records before the cut, leaves only zeros after them, and that the
// log continues cleanly from there.
func TestTornTailEveryOffset(t *testing.T) {
	for _, shape := range shapes {
		t.Run(shape.name, func(t *testing.T) { testTornTailEveryOffset(t, shape.prealloc) })
	}
}

func testTornTailEveryOffset(t *testing.T, prealloc bool) {
	f := newShapedFixture(t, prealloc)
	orig := segData(t, f.last)
	bounds := recordBounds(t, f.last, orig)
	n := len(bounds) - 1 // records in the segment
	batch := bounds[n-5:]
	if batch[0] == 0 {
		t.Fatal("the last write rolled; the fixture should append to a segment")
	}
	for _, zero := range []bool{false, true} {
		for cut := batch[0]; cut < int64(len(orig)); cut++ {
			b := slices.Clone(orig[:cut])
			if zero {
				b = append(b, make([]byte, int64(len(orig))-cut)...)
			}
			f.write(f.last, b)
			w, err := Open(f.dir, f.opts)
			if err != nil {
				t.Fatalf("cut at %d (zeroed %v): %v", cut, zero, err)
			}
			// The first changed byte: zeroing bytes that were zero already
			// changes nothing (and the preallocated shape pads with zeros).
			eff := cut
			for (zero || prealloc) && eff < int64(len(orig)) && orig[eff] == 0 {
				eff++
			}
			whole := 0 // records of the batch wholly before the damage
			for whole < 5 && batch[whole+1] <= eff {
				whole++
			}
			if d := stateDiff(f.after(min(whole, 4), whole == 5), w.Recovered()); d != "" {
				t.Fatalf("cut at %d (zeroed %v), %d whole records (-want +got):\n%s", cut, zero, whole, d)
			}
			got, _ := os.ReadFile(f.last)
			if end := recordsEnd(t, f.last); end != batch[whole] || nonZeroEnd(got, end) != end {
				t.Fatalf("cut at %d: records end at %d with data to %d, want %d and only zeros after", cut, end, nonZeroEnd(got, end), batch[whole])
			}
			if prealloc && int64(len(got)) < f.opts.SegmentBytes {
				t.Fatalf("cut at %d: file has %d bytes, want it preallocated to %d", cut, len(got), f.opts.SegmentBytes)
			}
			// Zeros after a record boundary are free space, not a tear.
			if got, want := w.Stats().TornBytes, nonZeroEnd(b, batch[whole])-batch[whole]; got != want {
				t.Fatalf("cut at %d: TornBytes %d, want %d", cut, got, want)
			}
			// The log continues cleanly after the cut.
			next := f.lastEnts[0].Index + uint64(min(whole, 4))
			ents := mkEnts(3, next, next)
			if err := w.Save(hs(3, 3, 30), ents, true); err != nil {
				t.Fatal(err)
			}
			w = reopen(t, w)
			m := model{hs: hs(3, 3, 30), snap: f.before.snap}
			m.ents = append(slices.Clone(f.after(min(whole, 4), false).Entries), cloneEnts(ents)...)
			checkState(t, w, m.state())
			mustClose(t, w)
		}
	}
	f.write(f.last, orig)
}

// TestBitFlips flips bits in the segment files and checks that Open either
// fails with ErrCorrupt naming the damaged file, or, only for a flip in the
// last record (a torn-tail position), returns the state without that
// record. Every bit of the last three records is flipped, plus a seeded
// sample of 2000 bits elsewhere; -wal.long flips every bit of every segment.
// In the preallocated shape, a flip in the free space after the records is
// junk a torn write could leave there: Open cuts it and loses nothing.
func TestBitFlips(t *testing.T) {
	for _, shape := range shapes {
		t.Run(shape.name, func(t *testing.T) { testBitFlips(t, shape.prealloc) })
	}
}

func testBitFlips(t *testing.T, prealloc bool) {
	f := newShapedFixture(t, prealloc)
	segs := segFiles(t, f.dir)
	orig := map[string][]byte{}
	for _, p := range segs {
		orig[p] = segData(t, p)
	}
	lastB := orig[f.last]
	bounds := recordBounds(t, f.last, lastB)
	lastRec := bounds[len(bounds)-2]
	type flip struct {
		path string
		bit  int64
	}
	var flips []flip
	if *long {
		for _, p := range segs {
			for bit := range int64(8 * max(f.size[p], int64(len(orig[p])))) {
				flips = append(flips, flip{p, bit})
			}
		}
	} else {
		for bit := 8 * bounds[len(bounds)-4]; bit < 8*int64(len(lastB)); bit++ {
			flips = append(flips, flip{f.last, bit})
		}
		rng := rand.New(rand.NewPCG(42, 7))
		for range 2000 {
			p := segs[rng.IntN(len(segs))]
			flips = append(flips, flip{p, rng.Int64N(8 * max(f.size[p], int64(len(orig[p]))))})
		}
	}
	tornOK, freeOK := 0, 0
	for _, fl := range flips {
		b := slices.Clone(orig[fl.path])
		if n := f.size[fl.path]; n > int64(len(b)) {
			b = append(b, make([]byte, n-int64(len(b)))...)
		}
		b[fl.bit/8] ^= 1 << (fl.bit % 8)
		os.WriteFile(fl.path, b, 0o644)
		w, err := Open(f.dir, f.opts)
		switch {
		case fl.bit/8 >= int64(len(orig[fl.path])):
			// In the free space of the newest segment (older ones have none).
			if err != nil {
				t.Fatalf("flip of bit %d of %s, in the free space: %v", fl.bit, fl.path, err)
			}
			if d := stateDiff(f.after(len(f.lastEnts), true), w.Recovered()); d != "" {
				t.Fatalf("flip of bit %d of %s (-want +got):\n%s", fl.bit, fl.path, d)
			}
			if w.Stats().TornBytes == 0 {
				t.Fatalf("flip of bit %d of %s, in the free space: not cut", fl.bit, fl.path)
			}
			freeOK++
			mustClose(t, w)
		case err != nil:
			wantCorrupt(t, err, fl.path)
		default:
			if fl.path != f.last || fl.bit/8 < lastRec {
				t.Fatalf("flip of bit %d of %s: Open succeeded; only a flip in the last record may", fl.bit, fl.path)
			}
			if d := stateDiff(f.after(len(f.lastEnts), false), w.Recovered()); d != "" {
				t.Fatalf("flip of bit %d of %s (-want +got):\n%s", fl.bit, fl.path, d)
			}
			tornOK++
			mustClose(t, w)
		}
		f.write(fl.path, orig[fl.path])
		f.write(f.last, lastB)
	}
	if tornOK == 0 {
		t.Error("no flip in the last record was treated as a torn tail")
	}
	if prealloc && freeOK == 0 {
		t.Error("no flip landed in the free space")
	}
	t.Logf("%d flips, %d treated as a torn tail, %d in the free space", len(flips), tornOK, freeOK)
}

func TestMovedRecordDetected(t *testing.T) {
	f := newFixture(t)
	segs := segFiles(t, f.dir)
	mid := segs[1]
	orig, _ := os.ReadFile(mid)
	bounds := recordBounds(t, mid, orig)
	t.Run("copied within a segment", func(t *testing.T) {
		// Records 1 and 2 are entries of equal size: copy 1 over 2.
		a, b := orig[bounds[1]:bounds[2]], orig[bounds[2]:bounds[3]]
		if len(a) != len(b) {
			t.Fatalf("records of %d and %d bytes", len(a), len(b))
		}
		c := slices.Clone(orig)
		copy(c[bounds[2]:], a)
		os.WriteFile(mid, c, 0o644)
		defer os.WriteFile(mid, orig, 0o644)
		_, err := Open(f.dir, f.opts)
		if ce := wantCorrupt(t, err, mid); ce.Offset != bounds[2] {
			t.Fatalf("offset %d, want %d", ce.Offset, bounds[2])
		}
	})
	t.Run("copied to another segment", func(t *testing.T) {
		other := segs[2]
		ob, _ := os.ReadFile(other)
		defer os.WriteFile(other, ob, 0o644)
		c := slices.Clone(ob)
		copy(c[bounds[1]:bounds[2]], orig[bounds[1]:bounds[2]])
		os.WriteFile(other, c, 0o644)
		_, err := Open(f.dir, f.opts)
		wantCorrupt(t, err, other)
	})
	t.Run("segment file renamed", func(t *testing.T) {
		// Swap the contents of two segments: each meta names its own seq.
		ob, _ := os.ReadFile(segs[2])
		defer os.WriteFile(segs[2], ob, 0o644)
		defer os.WriteFile(mid, orig, 0o644)
		os.WriteFile(mid, ob, 0o644)
		os.WriteFile(segs[2], orig, 0o644)
		_, err := Open(f.dir, f.opts)
		wantCorrupt(t, err, mid)
	})
}

func TestCorruptionReportsFileAndOffset(t *testing.T) {
	f := newFixture(t)
	segs := segFiles(t, f.dir)
	for _, p := range []string{segs[1], f.last} {
		orig, _ := os.ReadFile(p)
		bounds := recordBounds(t, p, orig)
		r := len(bounds) - 3 // not the last record
		c := slices.Clone(orig)
		c[bounds[r]+headerSize+3] ^= 0xff
		os.WriteFile(p, c, 0o644)
		_, err := Open(f.dir, f.opts)
		ce := wantCorrupt(t, err, p)
		if ce.Offset != bounds[r] || !strings.Contains(ce.Reason, "checksum") {
			t.Errorf("%s: got offset %d reason %q, want offset %d and a checksum mismatch", p, ce.Offset, ce.Reason, bounds[r])
		}
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not name %s", err, p)
		}
		if got, _ := os.ReadFile(p); !slices.Equal(got, c) {
			t.Errorf("%s: a failed Open modified the file", p)
		}
		os.WriteFile(p, orig, 0o644)
	}
}

func TestStructuralDamage(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, f *fixture, segs []string) string // returns the file to blame
		reason string
	}{
		{"older segment cut short", func(t *testing.T, f *fixture, segs []string) string {
			fi, _ := os.Stat(segs[1])
			os.Truncate(segs[1], fi.Size()-3)
			return segs[1]
		}, "not the newest"},
		{"middle segment missing", func(t *testing.T, f *fixture, segs []string) string {
			os.Remove(segs[1])
			return f.dir
		}, "not consecutive"},
		{"oldest segment missing", func(t *testing.T, f *fixture, segs []string) string {
			os.Remove(segs[0])
			return f.dir
		}, "a segment is missing"},
		{"newest segment's meta torn", func(t *testing.T, f *fixture, segs []string) string {
			os.Truncate(f.last, 10)
			return f.last
		}, "meta"},
		{"newest segment empty", func(t *testing.T, f *fixture, segs []string) string {
			os.Truncate(f.last, 0)
			return f.last
		}, "meta"},
		{"segment copied from another directory", func(t *testing.T, f *fixture, segs []string) string {
			d := t.TempDir()
			mustClose(t, mustOpen(t, d, f.opts))
			b, _ := os.ReadFile(segFiles(t, d)[0]) // segment 1 in the place of 2
			os.WriteFile(segs[0], b, 0o644)
			return segs[0]
		}, "checksum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			blame := tt.damage(t, f, segFiles(t, f.dir))
			_, err := Open(f.dir, f.opts)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.reason) || !strings.Contains(err.Error(), blame) {
				t.Fatalf("error %q should name %s and say %q", err, blame, tt.reason)
			}
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrClusterMismatch) {
				t.Fatalf("error %v wraps neither ErrCorrupt nor ErrClusterMismatch", err)
			}
		})
	}
}

// TestZeroFilledTail: zeros after the last record, however many, are free
// space (what preallocation leaves), not a torn tail: nothing is cut and the
// next write goes just after the records.
func TestZeroFilledTail(t *testing.T) {
	f := newFixture(t)
	end := recordsEnd(t, f.last)
	fh, _ := os.OpenFile(f.last, os.O_WRONLY|os.O_APPEND, 0)
	fh.Write(make([]byte, 4096))
	fh.Close()
	w := mustOpen(t, f.dir, f.opts)
	checkState(t, w, f.after(len(f.lastEnts), true))
	if got := w.Stats().TornBytes; got != 0 {
		t.Errorf("TornBytes %d, want 0", got)
	}
	ents := mkEnts(3, f.lastEnts[3].Index+1, f.lastEnts[3].Index+1)
	if err := w.Save(hs(3, 3, 30), ents, true); err != nil {
		t.Fatal(err)
	}
	mustClose(t, w)
	if got := recordsEnd(t, f.last); got <= end || got > end+200 {
		t.Errorf("records end at %d after one more entry, want just after %d", got, end)
	}
	w = mustOpen(t, f.dir, f.opts)
	m := f.before
	m.save(f.lastHS, f.lastEnts)
	m.save(hs(3, 3, 30), ents)
	checkState(t, w, m.state())
	mustClose(t, w)
}

func TestLeftoverFilesRemoved(t *testing.T) {
	f := newFixture(t)
	tmpSeg := filepath.Join(f.dir, segmentName(99, 1)+tmpSuffix)
	tmpSnap := filepath.Join(f.dir, snapDirName, snapName(1, 99)+tmpSuffix)
	orphan := filepath.Join(f.dir, snapDirName, snapName(1, 99))
	for _, p := range []string{tmpSeg, tmpSnap, orphan} {
		os.WriteFile(p, []byte("partial"), 0o644)
	}
	w := mustOpen(t, f.dir, f.opts)
	for _, p := range []string{tmpSeg, tmpSnap, orphan} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was not removed", p)
		}
	}
	checkState(t, w, f.after(len(f.lastEnts), true))
	mustClose(t, w)
}

func TestSnapshotsWithoutSegments(t *testing.T) {
	f := newFixture(t)
	for _, p := range segFiles(t, f.dir) {
		os.Remove(p)
	}
	_, err := Open(f.dir, f.opts)
	wantCorrupt(t, err, f.dir)
}

// faultFile fails writes after okBytes bytes and, if failSync, every fsync.
type faultFile struct {
	segFile
	okBytes  int
	failSync bool
}

func (f *faultFile) WriteAt(b []byte, off int64) (int, error) {
	if len(b) <= f.okBytes {
		f.okBytes -= len(b)
		return f.segFile.WriteAt(b, off)
	}
	n, _ := f.segFile.WriteAt(b[:f.okBytes], off)
	f.okBytes = 0
	return n, errInjected
}

func (f *faultFile) Sync() error {
	if f.failSync {
		return errInjected
	}
	return f.segFile.Sync()
}

func TestIOFailureIsSticky(t *testing.T) {
	tests := []struct {
		name    string
		fault   faultFile
		durable bool // the failed Save's records reach the file whole
	}{
		{"short write", faultFile{okBytes: 40}, false},
		{"write error", faultFile{okBytes: 0}, false},
		{"fsync error", faultFile{okBytes: 1 << 30, failSync: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOpts()
			o.NoSync = false
			w := mustOpen(t, t.TempDir(), o)
			var m model
			if err := w.Save(hs(1, 1, 0), mkEnts(1, 1, 5), true); err != nil {
				t.Fatal(err)
			}
			m.save(hs(1, 1, 0), mkEnts(1, 1, 5))
			fault := tt.fault
			fault.segFile = w.f
			w.f = &fault
			err := w.Save(hs(1, 1, 5), mkEnts(1, 6, 10), true)
			if !errors.Is(err, errInjected) {
				t.Fatalf("Save: %v, want the injected fault", err)
			}
			bytes := w.Stats().Bytes
			for name, err := range map[string]error{
				"Save":            w.Save(hs(1, 1, 5), mkEnts(1, 6, 6), false),
				"SaveSnapshot":    w.SaveSnapshot(mkSnap(1, 3, "x")),
				"InstallSnapshot": w.InstallSnapshot(mkSnap(1, 30, "x")),
			} {
				if !errors.Is(err, ErrFailed) || !errors.Is(err, errInjected) {
					t.Errorf("%s after the failure: %v, want ErrFailed wrapping the fault", name, err)
				}
			}
			if st := w.Stats(); !st.Failed || st.Bytes != bytes {
				t.Errorf("stats after refused calls: %+v (wrote %d more bytes)", st, st.Bytes-bytes)
			}
			fault.failSync = false
			w.Close()
			if tt.durable {
				m.save(hs(1, 1, 5), mkEnts(1, 6, 10))
			}
			w = mustOpen(t, w.dir, o)
			checkState(t, w, m.state())
			mustClose(t, w)
		})
	}
}

// TestReplayRejectsInconsistentRecords appends records whose checksums hold
// but whose content breaks the log's rules (what a bug, not a crash, would
// write): Open reports each at its offset rather than guessing.
func TestReplayRejectsInconsistentRecords(t *testing.T) {
	tests := []struct {
		name   string
		fill   func(e *encoder)
		reason string
	}{
		{"entry gap", func(e *encoder) { e.entry(&mkEnts(2, 40, 40)[0]) }, "gap"},
		{"entry at the snapshot", func(e *encoder) { e.entry(&mkEnts(2, 12, 12)[0]) }, "at or before the snapshot"},
		{"marker not newer", func(e *encoder) { e.marker(marker{index: 12, term: 1}) }, "not after"},
		{"marker term mismatch", func(e *encoder) { e.marker(marker{index: 20, term: 9}) }, "does not match"},
		{"marker beyond the log", func(e *encoder) { e.marker(marker{index: 99, term: 2}) }, "beyond the last entry"},
		{"second meta", func(e *encoder) { e.meta(meta{clusterID: 7, nodeID: 3, seq: 1}) }, "after the start"},
		{"short entry", func(e *encoder) { s := e.begin(); e.u64(1); e.end(s, recEntry) }, "payload of 8 bytes"},
		{"short hard state", func(e *encoder) { s := e.begin(); e.u64(1); e.end(s, recHardState) }, "payload of 8 bytes"},
		{"marker flags", func(e *encoder) { e.marker(marker{index: 30, term: 2, flags: 6}) }, "unknown flags"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			fi, _ := os.Stat(f.last)
			seq, _ := parseSegmentName(filepath.Base(f.last))
			e := encoder{seq: seq, base: fi.Size()}
			tt.fill(&e)
			fh, _ := os.OpenFile(f.last, os.O_WRONLY|os.O_APPEND, 0)
			fh.Write(e.buf)
			fh.Close()
			_, err := Open(f.dir, f.opts)
			ce := wantCorrupt(t, err, f.last)
			if ce.Offset != fi.Size() || !strings.Contains(ce.Reason, tt.reason) {
				t.Fatalf("offset %d reason %q, want %d and %q", ce.Offset, ce.Reason, fi.Size(), tt.reason)
			}
		})
	}
	t.Run("commit beyond the log", func(t *testing.T) {
		f := newFixture(t)
		fi, _ := os.Stat(f.last)
		seq, _ := parseSegmentName(filepath.Base(f.last))
		e := encoder{seq: seq, base: fi.Size()}
		e.hardState(hs(2, 2, 99))
		fh, _ := os.OpenFile(f.last, os.O_WRONLY|os.O_APPEND, 0)
		fh.Write(e.buf)
		fh.Close()
		_, err := Open(f.dir, f.opts)
		wantCorrupt(t, err, f.dir)
	})
}
