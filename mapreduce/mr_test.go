package mapreduce

import (
	"path/filepath"
	"testing"
	"time"
)

func TestWordCount(t *testing.T) {
	files := corpus(t, 1, 5, 400<<10)
	out := filepath.Join(t.TempDir(), "out")
	cfg := fastConfig(Job{App: "wc", Reduces: 4}, files, out)
	cfg.WorkerTimeout = time.Minute // no worker is lost, even on a loaded machine
	tc := startCluster(t, cfg)
	for range 3 {
		tc.addWorker(WorkerConfig{})
	}
	if err := tc.wait(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	checkWordCount(t, files, out, 4)
	st := tc.c.Progress()
	total := st.Maps.Done + st.Maps.Idle + st.Maps.Running
	if total < 10 {
		t.Errorf("%d map tasks, want the input split into more than one per file", total)
	}
	if st.Phase != "done" || st.Rerun != 0 || st.Backups != 0 || st.Failed != 0 || st.MapAttempts != total || st.ReduceAttempts != 4 {
		t.Errorf("status %v", st)
	}
	t.Log(st)
}
