package wal

import (
	"fmt"
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
