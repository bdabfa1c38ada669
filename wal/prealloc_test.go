package wal

import (
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
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
	t.Run("a valid record after zeros is damage", func(t *testing.T) {
		// Zeros, then a record that checks out: a lost write inside the log
		// (or a bug), not free space and not a torn tail.
		w, p := saved(t, o)
		end := w.size
		mustClose(t, w)
		at := end + 4096
		rec := encodeOne(1, at, func(e *encoder) { e.entry(&mkEnts(1, 4, 4)[0]) })
		fh, _ := os.OpenFile(p, os.O_WRONLY, 0)
		fh.WriteAt(rec, at)
		fh.Close()
		_, err := Open(w.dir, o)
		ce := wantCorrupt(t, err, p)
		if ce.Offset != end || !strings.Contains(ce.Reason, "a valid record follows") {
			t.Fatalf("offset %d reason %q, want %d and a valid record following", ce.Offset, ce.Reason, end)
		}
	})
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
