package mapreduce

import (
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkWordCount runs word count over a 16 MB corpus on two
// in-process workers; b.SetBytes makes the result a throughput.
func BenchmarkWordCount(b *testing.B) {
	files := corpus(b, 1, 4, 16<<20)
	for b.Loop() {
		out := filepath.Join(b.TempDir(), "out")
		cfg := fastConfig(Job{App: "wc", Reduces: 4}, files, out)
		cfg.SplitSize = 4 << 20
		cfg.WorkerTimeout = time.Minute
		tc := startCluster(b, cfg)
		tc.addWorker(WorkerConfig{})
		tc.addWorker(WorkerConfig{})
		if err := <-tc.runCh; err != nil {
			b.Fatal(err)
		}
		tc.runCh <- nil
	}
	b.SetBytes(16 << 20)
}
