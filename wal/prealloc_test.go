package wal

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/flotilla-dev/flotilla/raft"
)

// TestPreallocation checks the preallocated shape: a segment takes
// SegmentBytes from its creation, zeros after the records are free space,
// and what Open does with other bytes there.
func TestPreallocation(t *testing.T) {
	o := testOpts()
	o.SegmentBytes = 1 << 20
	size := func(t *testing.T, p string) int64 {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	saved := func(t *testing.T, o Options) (*WAL, string) {
		t.Helper()
		w := mustOpen(t, t.TempDir(), o)
		if err := w.Save(hs(1, 1, 2), mkEnts(1, 1, 3), true); err != nil {
			t.Fatal(err)
		}
		return w, segFiles(t, w.dir)[0]
	}

	t.Run("a new segment is SegmentBytes long", func(t *testing.T) {
		w, p := saved(t, o)
		if got := size(t, p); got != o.SegmentBytes {
			t.Errorf("segment has %d bytes, want %d", got, o.SegmentBytes)
		}
		if fi, _ := os.Stat(p); runtime.GOOS == "linux" {
			// fallocate reserved the blocks (a sparse file would hold one).
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Blocks*512 < o.SegmentBytes {
				t.Errorf("segment has %d bytes allocated, want %d (fallocate)", st.Blocks*512, o.SegmentBytes)
			}
		}
		if end := recordsEnd(t, p); end != w.size {
			t.Errorf("records end at %d, the WAL writes at %d", end, w.size)
		}
		w = reopen(t, w)
		checkState(t, w, (&model{hs: hs(1, 1, 2), ents: mkEnts(1, 1, 3)}).state())
		if st := w.Stats(); st.TornBytes != 0 {
			t.Errorf("TornBytes %d after a clean close", st.TornBytes)
		}
		mustClose(t, w)
	})
	t.Run("NoPreallocate grows the file with the records", func(t *testing.T) {
		o := o
		o.NoPreallocate = true
		w, p := saved(t, o)
		if got := size(t, p); got != w.size {
			t.Errorf("segment has %d bytes, want its %d bytes of records", got, w.size)
		}
		mustClose(t, w)
	})
	t.Run("a trimmed newest segment is preallocated on Open", func(t *testing.T) {
		w, p := saved(t, o)
		mustClose(t, w)
		trimSegments(t, w.dir)
		w = mustOpen(t, w.dir, o)
		if got := size(t, p); got != o.SegmentBytes {
			t.Errorf("segment has %d bytes after Open, want %d", got, o.SegmentBytes)
		}
		if err := w.Save(hs(1, 1, 3), mkEnts(1, 4, 4), true); err != nil {
			t.Fatal(err)
		}
		w = reopen(t, w)
		checkState(t, w, (&model{hs: hs(1, 1, 3), ents: mkEnts(1, 1, 4)}).state())
		mustClose(t, w)
	})
	t.Run("junk in the free space is cut", func(t *testing.T) {
		w, p := saved(t, o)
		end := w.size
		mustClose(t, w)
		fh, _ := os.OpenFile(p, os.O_WRONLY, 0)
		fh.WriteAt([]byte("half a record"), end+100)
		fh.Close()
		w = mustOpen(t, w.dir, o)
		checkState(t, w, (&model{hs: hs(1, 1, 2), ents: mkEnts(1, 1, 3)}).state())
		if got := w.Stats().TornBytes; got != 100+int64(len("half a record")) {
			t.Errorf("TornBytes %d, want %d", got, 100+len("half a record"))
		}
		mustClose(t, w)
		if b, _ := os.ReadFile(p); nonZeroEnd(b, end) != end || int64(len(b)) != o.SegmentBytes {
			t.Errorf("after the cut: data to %d in %d bytes, want %d in %d", nonZeroEnd(b, end), len(b), end, o.SegmentBytes)
		}
	})
	// What follows a lost sector: the valid records after it are damage
	// only if a write among them records a sync past the sector.
	for _, tc := range []struct {
		name  string
		proof bool
	}{{"a lost sector before unsynced records is a torn tail", false}, {"a lost sector before a write that records a sync past it is damage", true}} {
		t.Run(tc.name, func(t *testing.T) {
			w, p := saved(t, o)
			end := w.size
			mustClose(t, w)
			// A later write whose first 4 KiB never reached the disk: zeros,
			// then the rest of it. With proof it starts (in what survived)
			// with a sync record saying the segment was durable up to there.
			at := end + 4096
			rec := encodeOne(1, at, func(e *encoder) {
				if tc.proof {
					e.syncMark(at)
				}
				e.entry(&mkEnts(1, 4, 4)[0])
			})
			fh, _ := os.OpenFile(p, os.O_WRONLY, 0)
			fh.WriteAt(rec, at)
			fh.Close()
			w, err := Open(w.dir, o)
			if tc.proof {
				ce := wantCorrupt(t, err, p)
				if ce.Offset != end || !strings.Contains(ce.Reason, "damage to synced data") {
					t.Fatalf("offset %d reason %q, want %d and damage to synced data", ce.Offset, ce.Reason, end)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkState(t, w, (&model{hs: hs(1, 1, 2), ents: mkEnts(1, 1, 3)}).state())
			if got, want := w.Stats().TornBytes, at+int64(len(rec))-end; got != want {
				t.Errorf("TornBytes %d, want %d", got, want)
			}
			mustClose(t, w)
		})
	}
	t.Run("rolling cuts an old segment's free space", func(t *testing.T) {
		// A segment created with a larger SegmentBytes holds free space
		// when a smaller setting rolls away from it.
		w, p := saved(t, o)
		mustClose(t, w)
		small := o
		small.SegmentBytes = 100
		w = mustOpen(t, w.dir, small)
		if err := w.Save(hs(1, 1, 3), mkEnts(1, 4, 4), true); err != nil {
			t.Fatal(err)
		}
		if got, end := size(t, p), recordsEnd(t, p); got != end {
			t.Errorf("the old segment has %d bytes, records to %d: free space left behind", got, end)
		}
		w = reopen(t, w)
		checkState(t, w, (&model{hs: hs(1, 1, 3), ents: mkEnts(1, 1, 4)}).state())
		mustClose(t, w)
	})
	t.Run("zeros after the records of an older segment are records lost", func(t *testing.T) {
		// The last records of a segment that is not the newest read as
		// zeros: they were synced before the roll, so this is damage, not
		// free space, even though the next segment's meta agrees.
		f := newFixture(t)
		segs := segFiles(t, f.dir)
		p := segs[len(segs)-2]
		b := segData(t, p)
		bounds := recordBounds(t, p, b)
		from := bounds[len(bounds)-2]
		fh, _ := os.OpenFile(p, os.O_WRONLY, 0)
		fh.WriteAt(make([]byte, int64(len(b))-from), from)
		fh.Close()
		_, err := Open(f.dir, f.opts)
		ce := wantCorrupt(t, err, p)
		if ce.Offset != from || !strings.Contains(ce.Reason, "records lost") {
			t.Fatalf("offset %d reason %q, want %d and records lost", ce.Offset, ce.Reason, from)
		}
	})
}

// TestLostSectorsOfTheLastWrite models a power cut during the sync of a
// large write into preallocated space: the disk kept any subset of the
// write's sectors (the rest read as zeros), in any order. Open must always
// succeed with exactly the records before the first lost byte, because
// nothing of that write was acknowledged; and damage to the write before
// it, which was synced, must still be reported, because the last write's
// sync record says so.
func TestLostSectorsOfTheLastWrite(t *testing.T) {
	o := testOpts()
	o.SegmentBytes = 1 << 20
	o.NoSync = false // sync records are written only after real syncs
	dir := t.TempDir()
	w := mustOpen(t, dir, o)
	var m model
	save := func(h raft.HardState, ents []raft.Entry) {
		if err := w.Save(h, ents, true); err != nil {
			t.Fatal(err)
		}
		m.save(h, ents)
	}
	save(hs(1, 1, 0), mkEnts(1, 1, 5))
	prevStart := w.size
	save(hs(1, 1, 5), mkEnts(1, 6, 10))
	before := m
	start := w.size
	big := mkEnts(1, 11, 50)
	for i := range big {
		big[i].Data = append(big[i].Data, strings.Repeat("x", 280)...)
	}
	save(hs(1, 1, 50), big)
	mustClose(t, w)
	p := segFiles(t, dir)[0]
	orig, _ := os.ReadFile(p)
	end := recordsEnd(t, p)
	bounds := recordBounds(t, p, orig[:end])
	var batch []int64 // the last write's records: a sync record, 40 entries, a hard state
	for _, b := range bounds {
		if b >= start {
			batch = append(batch, b)
		}
	}
	if len(batch) != 43 || end-start < 3*4096 {
		t.Fatalf("the last write has %d records in %d bytes, want 42 records over 3 pages", len(batch)-1, end-start)
	}
	first := start - start%sectorSize
	sectors := int((end - first + sectorSize - 1) / sectorSize)

	// lose zeroes the sectors i of the last write for which lost(i) holds,
	// keeping the bytes before start (synced by the write before).
	lose := func(lost func(i int) bool) []byte {
		b := slices.Clone(orig)
		for i := range sectors {
			if lost(i) {
				lo := max(first+int64(i)*sectorSize, start)
				hi := min(first+int64(i+1)*sectorSize, end)
				clear(b[lo:hi])
			}
		}
		return b
	}
	check := func(name string, b []byte) {
		t.Helper()
		os.WriteFile(p, b, 0o644)
		w, err := Open(dir, o)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// The records of the last write wholly intact before the first
		// changed byte survive (the sync record counts for nothing).
		diff := start
		for diff < end && b[diff] == orig[diff] {
			diff++
		}
		whole := 0
		for whole < len(batch)-1 && batch[whole+1] <= diff {
			whole++
		}
		want := before
		if whole > 1 {
			want.save(raft.HardState{}, big[:min(whole-1, len(big))])
		}
		if whole == len(batch)-1 {
			want.hs = hs(1, 1, 50)
		}
		if d := stateDiff(want.state(), w.Recovered()); d != "" {
			t.Fatalf("%s: %d whole records (-want +got):\n%s", name, whole, d)
		}
		mustClose(t, w)
	}
	// Whole pages lost, every subset: the page cache writes back 4 KiB pages
	// (of file offsets), in no particular order.
	firstPage := start / 4096
	pages := int((end-1)/4096 - firstPage + 1)
	for mask := range 1 << pages {
		check(fmt.Sprintf("pages lost %0*b", pages, mask), lose(func(i int) bool {
			page := (first+int64(i)*sectorSize)/4096 - firstPage
			return mask&(1<<page) != 0
		}))
	}
	for s := range sectors {
		check(fmt.Sprintf("sector %d lost", s), lose(func(i int) bool { return i == s }))
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for k := range 300 {
		mask := rng.Uint64()
		check(fmt.Sprintf("random sectors lost %d (%x)", k, mask), lose(func(i int) bool { return mask&(1<<(i%64)) != 0 }))
	}

	t.Run("damage to the synced write before it is reported", func(t *testing.T) {
		b := slices.Clone(orig)
		b[prevStart+headerSize+20] ^= 0x01
		os.WriteFile(p, b, 0o644)
		defer os.WriteFile(p, orig, 0o644)
		_, err := Open(dir, o)
		ce := wantCorrupt(t, err, p)
		if !strings.Contains(ce.Reason, "damage to synced data") {
			t.Fatalf("reason %q, want damage to synced data", ce.Reason)
		}
	})
	t.Run("the synced write before it lost is reported", func(t *testing.T) {
		// Zeros where a synced write was, then the last write: the disk
		// lost acknowledged data, and the last write's sync record says so.
		b := slices.Clone(orig)
		clear(b[prevStart:start])
		os.WriteFile(p, b, 0o644)
		defer os.WriteFile(p, orig, 0o644)
		_, err := Open(dir, o)
		ce := wantCorrupt(t, err, p)
		if ce.Offset != prevStart || !strings.Contains(ce.Reason, "damage to synced data") {
			t.Fatalf("offset %d reason %q, want %d and damage to synced data", ce.Offset, ce.Reason, prevStart)
		}
	})
}

// syncRecords returns the values of the sync records of segment file path,
// by offset.
func syncRecords(t *testing.T, path string) map[int64]int64 {
	t.Helper()
	seq, _ := parseSegmentName(filepath.Base(path))
	out := map[int64]int64{}
	_, err := scanSegment(path, seq, func(rec record, off int64) error {
		if rec.typ == recSync {
			v, err := decodeSync(rec.payload, off)
			if err != nil {
				t.Fatalf("sync record at %d: %v", off, err)
			}
			out[off] = v
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSyncRecords checks when a write carries a sync record and what it
// says.
func TestSyncRecords(t *testing.T) {
	synced := testOpts()
	synced.NoSync = false
	t.Run("a write after a sync says how far the segment is durable", func(t *testing.T) {
		w := mustOpen(t, t.TempDir(), synced)
		p := segFiles(t, w.dir)[0]
		if err := w.Save(hs(1, 1, 0), mkEnts(1, 1, 2), true); err != nil {
			t.Fatal(err)
		}
		afterFirst := w.size
		for i, sync := range []bool{false, false, true} {
			if err := w.Save(hs(1, 1, uint64(i+1)), mkEnts(1, uint64(i+3), uint64(i+3)), sync); err != nil {
				t.Fatal(err)
			}
		}
		mustClose(t, w)
		// The first write after creation (which synced the meta record),
		// the first after the first sync, none after unsynced writes.
		got := syncRecords(t, p)
		if len(got) != 2 || got[afterFirst] != afterFirst {
			t.Fatalf("sync records %v, want two, one at %d saying %d", got, afterFirst, afterFirst)
		}
	})
	t.Run("Open syncs what it recovered and the next write says so", func(t *testing.T) {
		// A process killed before its sync: the records Open finds may be
		// in the page cache only.
		w := mustOpen(t, t.TempDir(), synced)
		if err := w.Save(hs(1, 1, 0), mkEnts(1, 1, 3), false); err != nil {
			t.Fatal(err)
		}
		end := w.size
		crash(w)
		w = mustOpen(t, w.dir, synced)
		if st := w.Stats(); st.Fsyncs != 1 {
			t.Errorf("Open made %d file syncs, want 1", st.Fsyncs)
		}
		if err := w.Save(hs(1, 1, 3), mkEnts(1, 4, 4), false); err != nil {
			t.Fatal(err)
		}
		mustClose(t, w)
		if got := syncRecords(t, segFiles(t, w.dir)[0]); got[end] != end {
			t.Fatalf("sync records %v, want one at %d saying %d", got, end, end)
		}
	})
	t.Run("NoSync writes none", func(t *testing.T) {
		w := mustOpen(t, t.TempDir(), testOpts())
		for i := uint64(1); i <= 3; i++ {
			if err := w.Save(hs(1, 1, i-1), mkEnts(1, i, i), true); err != nil {
				t.Fatal(err)
			}
		}
		mustClose(t, w)
		if got := syncRecords(t, segFiles(t, w.dir)[0]); len(got) != 0 {
			t.Fatalf("sync records %v under NoSync, where nothing is durable", got)
		}
	})
	t.Run("a version 1 segment gets none, and the next segment is version 2", func(t *testing.T) {
		// Written by an older build: an older build must still read it.
		dir := t.TempDir()
		o := synced
		o.SegmentBytes = 300
		p := filepath.Join(dir, segmentName(1, 1))
		e := encoder{seq: 1}
		e.meta(meta{version: 1, clusterID: o.ClusterID, nodeID: o.NodeID, seq: 1})
		if err := os.WriteFile(p, e.buf, 0o644); err != nil {
			t.Fatal(err)
		}
		w := mustOpen(t, dir, o)
		for i := uint64(1); i <= 6; i++ {
			if err := w.Save(hs(1, 1, i-1), mkEnts(1, i, i), true); err != nil {
				t.Fatal(err)
			}
		}
		mustClose(t, w)
		segs := segFiles(t, dir)
		if len(segs) < 2 {
			t.Fatalf("%d segments, want a roll", len(segs))
		}
		if got := syncRecords(t, segs[0]); len(got) != 0 {
			t.Errorf("sync records %v in the version 1 segment", got)
		}
		for _, p := range segs[1:] {
			b, _ := os.ReadFile(p)
			if m, err := decodeMeta(b[headerSize : headerSize+metaSize]); err != nil || m.version != metaVersion {
				t.Errorf("%s: meta %+v %v, want version %d", p, m, err, metaVersion)
			}
		}
		w = mustOpen(t, dir, o)
		checkState(t, w, (&model{hs: hs(1, 1, 5), ents: mkEnts(1, 1, 6)}).state())
		mustClose(t, w)
	})
}

// TestFailedEmptySyncIsSticky: a Save with nothing new but sync set, whose
// sync fails, leaves the WAL failed like any other I/O error (the kernel
// may have dropped the unsynced pages; a later sync record must not claim
// them).
func TestFailedEmptySyncIsSticky(t *testing.T) {
	o := testOpts()
	o.NoSync = false
	w := mustOpen(t, t.TempDir(), o)
	if err := w.Save(hs(1, 1, 0), mkEnts(1, 1, 3), false); err != nil {
		t.Fatal(err)
	}
	fault := faultFile{segFile: w.f, okBytes: 1 << 30, failSync: true}
	w.f = &fault
	if err := w.Save(raft.HardState{}, nil, true); !errors.Is(err, errInjected) {
		t.Fatalf("empty synced Save: %v, want the injected fault", err)
	}
	fault.failSync = false
	if err := w.Save(raft.HardState{}, nil, true); !errors.Is(err, ErrFailed) {
		t.Fatalf("Save after the failed sync: %v, want ErrFailed", err)
	}
	w.Close()
}

// TestLostSectorInEarlierUnsyncedWrite: two unsynced writes after the last
// sync, the first losing a sector and the second (which carries no sync
// record, as no sync came between) reaching the disk whole. Nothing after
// the sync was acknowledged, so the tail is cut at the lost sector's record.
func TestLostSectorInEarlierUnsyncedWrite(t *testing.T) {
	o := testOpts()
	o.NoSync = false
	o.SegmentBytes = 1 << 20
	w := mustOpen(t, t.TempDir(), o)
	var m model
	if err := w.Save(hs(1, 1, 0), mkEnts(1, 1, 3), true); err != nil {
		t.Fatal(err)
	}
	m.save(hs(1, 1, 0), mkEnts(1, 1, 3))
	synced := w.size
	big := mkEnts(1, 4, 10)
	for i := range big {
		big[i].Data = append(big[i].Data, strings.Repeat("y", 300)...)
	}
	if err := w.Save(hs(1, 1, 3), big, false); err != nil {
		t.Fatal(err)
	}
	second := w.size
	if err := w.Save(hs(1, 1, 10), mkEnts(1, 11, 12), false); err != nil {
		t.Fatal(err)
	}
	crash(w)
	p := segFiles(t, w.dir)[0]
	got := syncRecords(t, p)
	if _, atSecond := got[second]; len(got) != 2 || got[synced] != synced || atSecond {
		t.Fatalf("sync records %v, want one at %d (after the sync) and one from creation, none at %d", got, synced, second)
	}
	// Lose a whole sector inside the first unsynced write: its records are
	// the sync record at synced, then entries 4..10.
	b, _ := os.ReadFile(p)
	bounds := recordBounds(t, p, b[:recordsEnd(t, p)])
	k := slices.Index(bounds, synced)
	lo := (bounds[k+3]/sectorSize + 1) * sectorSize // after entry 6's start
	if k < 0 || lo+sectorSize > second {
		t.Fatalf("no whole sector inside the first unsynced write [%d, %d)", synced, second)
	}
	clear(b[lo : lo+sectorSize])
	os.WriteFile(p, b, 0o644)
	w = mustOpen(t, w.dir, o)
	// The entries wholly before the lost sector survive, nothing after.
	want := m
	for i, e := range big {
		if bounds[k+2+i] > lo {
			break
		}
		want.save(raft.HardState{}, []raft.Entry{e})
	}
	checkState(t, w, want.state())
	if w.Stats().TornBytes == 0 {
		t.Error("nothing cut")
	}
	mustClose(t, w)
}
