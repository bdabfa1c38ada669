package dsort

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// DefaultMem is the default bound on record bytes a sort holds in memory.
const DefaultMem = 2 << 30

// Options tunes a sort. The zero value is usable.
type Options struct {
	// Mem bounds the record bytes held in memory before a sorted run is
	// spilled to disk (default DefaultMem). The sort's index adds 16 bytes
	// per 100-byte record on top of it.
	Mem int64
	// TempDir holds spilled runs (default: the output's directory).
	TempDir string
	// Workers is the number of goroutines that sort and gather
	// (default GOMAXPROCS).
	Workers int
	// NoSync skips the fsync of the output before its rename (benchmarks
	// on throwaway data only; the rename is still atomic).
	NoSync bool
}

func (o Options) mem() int64 {
	if o.Mem <= 0 {
		return DefaultMem
	}
	return o.Mem
}

func (o Options) tempDir(output string) string {
	if o.TempDir != "" {
		return o.TempDir
	}
	return filepath.Dir(output)
}

// Stats describes a finished sort.
type Stats struct {
	Sum      Sum           // the records written
	Runs     int           // sorted runs spilled to disk (0: sorted in memory)
	Duration time.Duration // wall time from start to the output's rename
}

// SortFile sorts the records of the file input into the file output,
// written atomically. Input whose size is not a multiple of RecordSize is
// rejected with ErrPartialRecord.
func SortFile(ctx context.Context, input, output string, opt Options) (Stats, error) {
	start := time.Now()
	f, err := os.Open(input)
	if err != nil {
		return Stats{}, fmt.Errorf("dsort: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Stats{}, fmt.Errorf("dsort: %w", err)
	}
	size := fi.Size()
	if err := checkSize(input, size); err != nil {
		return Stats{}, err
	}
	if size/RecordSize >= maxSortRecords {
		return Stats{}, fmt.Errorf("dsort: %s holds more than 2^48 records", input)
	}
	r := newRuns(opt.mem(), opt.tempDir(output), opt.Workers, !opt.NoSync)
	defer r.close()
	if size <= int64(r.mem) {
		// Fits: sort the mapped file in place and gather into the output.
		data, release, err := mapFile(f, size)
		if err != nil {
			return Stats{}, err
		}
		defer release()
		r.arena = viewArena(data)
		sum, err := r.finish(output)
		return Stats{Sum: sum, Duration: time.Since(start)}, err
	}
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return Stats{}, err
		}
		if r.full() {
			if err := r.spill(); err != nil {
				return Stats{}, err
			}
		}
		buf := r.space(int(min(size-off, 16_000_000)))
		n, err := f.ReadAt(buf, off)
		if err != nil && (err != io.EOF || int64(n) != size-off) {
			return Stats{}, fmt.Errorf("dsort: read %s: %w", input, err)
		}
		r.commit(n)
		off += int64(n)
	}
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	sum, err := r.finish(output)
	return Stats{Sum: sum, Runs: r.spilled(), Duration: time.Since(start)}, err
}
