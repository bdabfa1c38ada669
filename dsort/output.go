package dsort

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// gatherBlock is the number of records gathered into one write.
const gatherBlock = 40 << 10 // 4 MB of records

// gatherWriter writes records in a sorted order: workers copy blocks of
// records into a small ring of reused buffers while one goroutine writes
// them in order, so the output never needs a second copy of the data.
type gatherWriter struct {
	workers int
	bufs    [][]byte // ring of len(bufs) buffers, owned by the writer
}

func newGatherWriter(workers int) *gatherWriter {
	g := &gatherWriter{workers: max(workers, 1)}
	g.bufs = make([][]byte, 2*g.workers)
	return g
}

// write writes the records of a to w in the order of ents and adds them to sum.
func (g *gatherWriter) write(w io.Writer, a *arena, ents []entry, sum *Sum) error {
	nblocks := (len(ents) + gatherBlock - 1) / gatherBlock
	slots := len(g.bufs)
	free := make([]chan struct{}, slots)
	ready := make([]chan struct{}, slots)
	for s := range slots {
		free[s] = make(chan struct{}, 1)
		ready[s] = make(chan struct{}, 1)
		free[s] <- struct{}{}
	}
	var next atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range g.workers {
		wg.Go(func() {
			for !stop.Load() {
				j := int(next.Add(1) - 1)
				if j >= nblocks {
					return
				}
				s := j % slots
				<-free[s]
				lo, hi := j*gatherBlock, min((j+1)*gatherBlock, len(ents))
				b := g.bufs[s][:0]
				if cap(b) < gatherBlock*RecordSize {
					b = make([]byte, 0, gatherBlock*RecordSize)
				}
				for _, e := range ents[lo:hi] {
					b = append(b, a.rec(e.index())...)
				}
				g.bufs[s] = b
				ready[s] <- struct{}{}
			}
		})
	}
	var err error
	for j := range nblocks {
		s := j % slots
		<-ready[s]
		if err == nil {
			sum.Add(g.bufs[s])
			_, err = w.Write(g.bufs[s])
			if err != nil {
				stop.Store(true)
			}
		}
		free[s] <- struct{}{}
	}
	wg.Wait()
	return err
}

// atomicFile is an output file that appears under its name only once it is
// complete: it is written to a temp file in the same directory, fsynced,
// renamed and the directory fsynced. Abort removes the temp file, so a
// failed run leaves nothing that looks like output.
type atomicFile struct {
	*os.File
	path string
	done bool
}

func createAtomic(path string) (*atomicFile, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("dsort: create output: %w", err)
	}
	if err := f.Chmod(0o644); err != nil { // CreateTemp makes it 0600
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("dsort: create output: %w", err)
	}
	return &atomicFile{File: f, path: path}, nil
}

// Commit makes the file visible under its name.
func (f *atomicFile) Commit(sync bool) error {
	if f.done {
		return nil
	}
	f.done = true
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			os.Remove(f.Name())
			return fmt.Errorf("dsort: sync output %s: %w", f.path, err)
		}
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("dsort: close output %s: %w", f.path, err)
	}
	if err := os.Rename(f.Name(), f.path); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("dsort: rename output: %w", err)
	}
	if !sync {
		return nil
	}
	d, err := os.Open(filepath.Dir(f.path))
	if err != nil {
		return fmt.Errorf("dsort: sync output directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("dsort: sync output directory: %w", err)
	}
	return nil
}

// Abort removes the temp file unless the file was committed.
func (f *atomicFile) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.Close()
	os.Remove(f.Name())
}
