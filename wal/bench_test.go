package wal

import (
	"fmt"
	"sync"
	"testing"

	"github.com/flotilla-dev/flotilla/raft"
)

// BenchmarkSave measures synced Saves of batches of 256-byte entries plus a
// hard state, on the real disk (fsync on). It fails if a Save costs other
// than exactly one file fsync, and reports fsyncs per Save, entries per
// second and, through SetBytes, entry payload throughput. prealloc=false
// is the same with Options.NoPreallocate (every Save grows the file).
func BenchmarkSave(b *testing.B) {
	for _, pre := range []bool{true, false} {
		for _, n := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("prealloc=%v/batch=%d", pre, n), func(b *testing.B) { benchmarkSave(b, n, !pre) })
		}
	}
}

func benchmarkSave(b *testing.B, n int, noPrealloc bool) {
	w, err := Open(b.TempDir(), Options{ClusterID: 1, NodeID: 1, Logger: discard, NoPreallocate: noPrealloc})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	data := make([]byte, 256)
	ents := make([]raft.Entry, n)
	var idx uint64
	b.SetBytes(int64(n * len(data)))
	start := w.Stats()
	saves := 0
	for b.Loop() {
		for i := range ents {
			idx++
			ents[i] = raft.Entry{Term: 1, Index: idx, Type: raft.EntryNormal, Data: data}
		}
		before := w.stats.Fsyncs
		if err := w.Save(raft.HardState{Term: 1, Vote: 1, Commit: idx}, ents, true); err != nil {
			b.Fatal(err)
		}
		if got := w.stats.Fsyncs - before; got != 1 {
			b.Fatalf("Save %d cost %d fsyncs, want 1", saves, got)
		}
		saves++
	}
	end := w.Stats()
	b.ReportMetric(float64(end.Fsyncs-start.Fsyncs)/float64(saves), "fsyncs/op")
	b.ReportMetric(float64(saves*n)/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(float64(end.Bytes-start.Bytes)/float64(saves), "disk-B/op")
}

// BenchmarkSaveThreeWALs is one proposal's disk work in a 3-member cluster
// on one disk: three WALs each do a synced Save of one 256-byte entry at the
// same time, and an op ends when all three have. It shows whether their
// syncs overlap or queue behind each other (on ext4, behind the journal).
func BenchmarkSaveThreeWALs(b *testing.B) {
	for _, pre := range []bool{true, false} {
		b.Run(fmt.Sprintf("prealloc=%v", pre), func(b *testing.B) {
			var ws [3]*WAL
			for i := range ws {
				w, err := Open(b.TempDir(), Options{ClusterID: 1, NodeID: uint64(i + 1), Logger: discard, NoPreallocate: !pre})
				if err != nil {
					b.Fatal(err)
				}
				defer w.Close()
				ws[i] = w
			}
			data := make([]byte, 256)
			var idx uint64
			errs := make([]error, len(ws))
			for b.Loop() {
				idx++
				var wg sync.WaitGroup
				for i, w := range ws {
					wg.Go(func() {
						e := []raft.Entry{{Term: 1, Index: idx, Type: raft.EntryNormal, Data: data}}
						errs[i] = w.Save(raft.HardState{Term: 1, Vote: 1, Commit: idx}, e, true)
					})
				}
				wg.Wait()
				for _, err := range errs {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
