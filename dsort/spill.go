package dsort

import (
	"bufio"
	"container/heap"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

// runs collects records in an arena of at most mem bytes; when the arena
// is full it sorts it and spills it to a temp file as a sorted run. Finish
// writes the sorted output: straight from the arena when nothing spilled,
// else by a k-way merge of the runs. It is not safe for concurrent use.
type runs struct {
	mem     int    // arena capacity in bytes, a multiple of RecordSize
	tempDir string // parent of the run directory ("" = os.TempDir)
	sync    bool   // fsync the output before renaming it

	arena *arena // records not yet spilled
	dir   string // run directory, created at the first spill
	files []string
	s     *sorter
	g     *gatherWriter
}

func newRuns(mem int64, tempDir string, workers int, sync bool) *runs {
	m := int(max(min(mem, 1<<62)/RecordSize, 1) * RecordSize)
	return &runs{mem: m, tempDir: tempDir, sync: sync, arena: &arena{}, s: newSorter(workers), g: newGatherWriter(workers)}
}

// space returns free room at the end of the arena, at most max bytes
// (a multiple of RecordSize); empty when the arena is full.
func (r *runs) space(max int) []byte { return r.arena.space(min(max, r.mem-r.arena.bytes())) }

// commit marks n more bytes of the arena's tail as records.
func (r *runs) commit(n int) { r.arena.commit(n) }

// full reports whether the arena holds mem bytes.
func (r *runs) full() bool { return r.arena.bytes() >= r.mem }

// add copies recs into the arena, spilling whenever it fills.
func (r *runs) add(recs []byte) error {
	for len(recs) > 0 {
		if r.full() {
			if err := r.spill(); err != nil {
				return err
			}
		}
		n := copy(r.space(len(recs)), recs)
		r.commit(n)
		recs = recs[n:]
	}
	return nil
}

// spill sorts the arena into a new run file and empties the arena.
func (r *runs) spill() error {
	if r.arena.n == 0 {
		return nil
	}
	if r.dir == "" {
		d, err := os.MkdirTemp(r.tempDir, "dsort-runs-*")
		if err != nil {
			return fmt.Errorf("dsort: spill directory: %w", err)
		}
		r.dir = d
	}
	name := filepath.Join(r.dir, fmt.Sprintf("run-%05d", len(r.files)))
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("dsort: spill: %w", err)
	}
	var sum Sum
	err = r.g.write(f, r.arena, r.s.sort(r.arena), &sum)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("dsort: spill %s: %w", name, err)
	}
	r.files = append(r.files, name)
	r.arena.reset()
	return nil
}

// spilled reports the number of runs on disk.
func (r *runs) spilled() int { return len(r.files) }

// finish writes every record added so far, sorted, to the file at path
// (atomically) and returns their Sum.
func (r *runs) finish(path string) (Sum, error) {
	var sum Sum
	out, err := createAtomic(path)
	if err != nil {
		return sum, err
	}
	defer out.Abort()
	if len(r.files) == 0 {
		err = r.g.write(out, r.arena, r.s.sort(r.arena), &sum)
	} else {
		if err = r.spill(); err == nil {
			sum, err = mergeRuns(out, r.files)
		}
	}
	if err != nil {
		return sum, fmt.Errorf("dsort: write %s: %w", path, err)
	}
	return sum, out.Commit(r.sync)
}

// close removes the spilled runs.
func (r *runs) close() {
	if r.dir != "" {
		os.RemoveAll(r.dir)
		r.dir = ""
	}
}

// cursor reads one sorted run record by record.
type cursor struct {
	r    *bufio.Reader
	rec  [RecordSize]byte
	hi   uint64
	lo   uint16
	run  int // run index: ties between runs go to the earlier one
	name string
}

func (c *cursor) next() (bool, error) {
	_, err := io.ReadFull(c.r, c.rec[:])
	if err == io.EOF {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("dsort: read run %s: %w", c.name, err)
	}
	c.hi, c.lo = keyParts(c.rec[:])
	return true, nil
}

type cursorHeap []*cursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if a.hi != b.hi {
		return a.hi < b.hi
	}
	if a.lo != b.lo {
		return a.lo < b.lo
	}
	return a.run < b.run
}
func (h cursorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// mergeRuns writes the k-way merge of the sorted run files to w.
func mergeRuns(w io.Writer, files []string) (Sum, error) {
	var sum Sum
	h := make(cursorHeap, 0, len(files))
	for i, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return sum, fmt.Errorf("dsort: open run: %w", err)
		}
		defer f.Close()
		c := &cursor{r: bufio.NewReaderSize(f, 1<<20), run: i, name: name}
		ok, err := c.next()
		if err != nil {
			return sum, err
		}
		if ok {
			h = append(h, c)
		}
	}
	heap.Init(&h)
	bw := bufio.NewWriterSize(w, 4<<20)
	for len(h) > 0 {
		c := h[0]
		if _, err := bw.Write(c.rec[:]); err != nil {
			return sum, err
		}
		sum.Hash += uint64(crc32.Checksum(c.rec[:], castagnoli))
		sum.Records++
		ok, err := c.next()
		if err != nil {
			return sum, err
		}
		if ok {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
	if err := bw.Flush(); err != nil {
		return sum, err
	}
	return sum, nil
}
