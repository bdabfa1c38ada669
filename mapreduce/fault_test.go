package mapreduce

import (
	"context"
	"io"
	"iter"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// hookApp is word count with hooks that tests use to block or crash a
// worker at a chosen point.
type hookApp struct {
	WordCount
	onMap    func(ctx context.Context, ti TaskInfo) error
	onReduce func(ctx context.Context, ti TaskInfo) error
}

func (h hookApp) Map(ctx context.Context, in Split, r io.Reader, emit Emit) error {
	if h.onMap != nil {
		ti, _ := TaskFromContext(ctx)
		if err := h.onMap(ctx, ti); err != nil {
			return err
		}
	}
	return h.WordCount.Map(ctx, in, r, emit)
}

func (h hookApp) Reduce(ctx context.Context, pairs iter.Seq2[string, string], emit Emit) error {
	if h.onReduce != nil {
		ti, _ := TaskFromContext(ctx)
		if err := h.onReduce(ctx, ti); err != nil {
			return err
		}
	}
	return h.WordCount.Reduce(ctx, pairs, emit)
}

func hookApps(h hookApp) map[string]AppFactory {
	return map[string]AppFactory{"wc": func(Job) (App, error) { return h, nil }}
}

// blockOnce returns a hook that, the first time it runs, closes started
// and blocks until its context ends (then closes cancelled).
func blockOnce(started, cancelled chan struct{}) func(context.Context, TaskInfo) error {
	var once sync.Once
	return func(ctx context.Context, _ TaskInfo) error {
		first := false
		once.Do(func() { first = true })
		if !first {
			return nil
		}
		close(started)
		<-ctx.Done()
		if cancelled != nil {
			close(cancelled)
		}
		return ctx.Err()
	}
}

// TestWorkerKilledMidMap crashes a worker while it runs a map task: the
// coordinator declares it dead after the worker timeout and re-runs the
// task elsewhere.
func TestWorkerKilledMidMap(t *testing.T) {
	files := corpus(t, 2, 3, 200<<10)
	out := filepath.Join(t.TempDir(), "out")
	tc := startCluster(t, fastConfig(Job{App: "wc", Reduces: 3}, files, out))
	started := make(chan struct{})
	w0 := tc.addWorker(WorkerConfig{Apps: hookApps(hookApp{onMap: blockOnce(started, nil)})})
	<-started
	tc.addWorker(WorkerConfig{})
	tc.addWorker(WorkerConfig{})
	tc.kill(w0)
	if err := tc.wait(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	checkWordCount(t, files, out, 3)
	st := tc.c.Progress()
	maps := st.Maps.Done
	if st.Rerun < 1 || st.MapAttempts <= maps {
		t.Errorf("want the killed worker's map task re-run: %v (%d map attempts)", st, st.MapAttempts)
	}
}

// TestWorkerKilledMidReduce crashes a worker while it runs a reduce task:
// the reduce task and the map tasks whose output the worker held are
// re-run.
func TestWorkerKilledMidReduce(t *testing.T) {
	files := corpus(t, 3, 3, 200<<10)
	out := filepath.Join(t.TempDir(), "out")
	tc := startCluster(t, fastConfig(Job{App: "wc", Reduces: 3}, files, out))
	started := make(chan struct{})
	w0 := tc.addWorker(WorkerConfig{Apps: hookApps(hookApp{onReduce: blockOnce(started, nil)})})
	<-started // w0 ran every map task alone, then took a reduce task
	mapsBefore := tc.c.Progress().MapAttempts
	tc.addWorker(WorkerConfig{})
	tc.addWorker(WorkerConfig{})
	tc.kill(w0)
	if err := tc.wait(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	checkWordCount(t, files, out, 3)
	st := tc.c.Progress()
	if st.ReduceAttempts <= 3 || st.MapAttempts < 2*mapsBefore {
		t.Errorf("want the reduce task and the lost map outputs re-run: %v (%d map attempts before the kill, %d reduce attempts)", st, mapsBefore, st.ReduceAttempts)
	}
}

// TestLostMapOutput makes a live worker lose its map outputs: reducers
// fail to fetch them, report it, and the coordinator re-runs the map tasks.
func TestLostMapOutput(t *testing.T) {
	files := corpus(t, 4, 3, 60<<10)
	out := filepath.Join(t.TempDir(), "out")
	tc := startCluster(t, fastConfig(Job{App: "wc", Reduces: 2}, files, out))
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hook := func(ctx context.Context, _ TaskInfo) error {
		first := false
		once.Do(func() { first = true })
		if first {
			close(started)
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	dir0 := t.TempDir()
	tc.addWorker(WorkerConfig{Dir: dir0, Apps: hookApps(hookApp{onReduce: hook})})
	<-started // w0 holds every map output and has fetched its reduce input
	maps, _ := filepath.Glob(filepath.Join(dir0, "job-*", "m-*"))
	if len(maps) == 0 {
		t.Fatal("no map outputs found")
	}
	for _, m := range maps {
		if err := os.RemoveAll(m); err != nil {
			t.Fatal(err)
		}
	}
	tc.addWorker(WorkerConfig{})
	waitFor(t, 20*time.Second, "a lost map output re-run", func() bool { return tc.c.Progress().Rerun > 0 })
	close(release)
	if err := tc.wait(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	checkWordCount(t, files, out, 2)
	if st := tc.c.Progress(); st.MapAttempts < 2*len(maps) {
		t.Errorf("want all %d lost map outputs re-run: %v (%d map attempts)", len(maps), st, st.MapAttempts)
	}
}

// TestStragglerBackup runs a worker that hangs in its first map task while
// it keeps sending heartbeats: near the end of the map phase a backup
// attempt runs on another worker, wins, and the straggler's attempt is
// cancelled.
func TestStragglerBackup(t *testing.T) {
	files := corpus(t, 5, 3, 200<<10)
	out := filepath.Join(t.TempDir(), "out")
	cfg := fastConfig(Job{App: "wc", Reduces: 2}, files, out)
	cfg.BackupAfter = 100 * time.Millisecond
	cfg.WorkerTimeout = time.Minute // a straggler is alive: only a backup helps
	tc := startCluster(t, cfg)
	started, cancelled := make(chan struct{}), make(chan struct{})
	w0 := tc.addWorker(WorkerConfig{Apps: hookApps(hookApp{onMap: blockOnce(started, cancelled)})})
	<-started
	tc.addWorker(WorkerConfig{})
	if err := tc.wait(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	checkWordCount(t, files, out, 2)
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Error("the straggling attempt was not cancelled")
	}
	if st := tc.c.Progress(); st.Backups < 1 || st.Rerun != 0 {
		t.Errorf("want a backup and no re-run: %v", st)
	}
	if err := <-tc.workers[w0].done; err != nil {
		t.Errorf("straggler worker: %v", err)
	}
	tc.workers[w0].done <- nil
}

// TestRandomCrashes is the 6.824 crash test in spirit: workers exit at
// random points of map and reduce tasks, or run slowly, and new ones
// replace them; the job still completes with the right output.
func TestRandomCrashes(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		files := corpus(t, 10+seed, 4, 300<<10)
		out := filepath.Join(t.TempDir(), "out")
		cfg := fastConfig(Job{App: "wc", Reduces: 5}, files, out)
		cfg.BackupAfter = 50 * time.Millisecond
		tc := startCluster(t, cfg)
		var mu sync.Mutex
		r := rand.New(rand.NewPCG(seed, 2))
		chaos := func(ctx context.Context, _ TaskInfo) error {
			mu.Lock()
			p, d := r.IntN(10), time.Duration(r.IntN(30))*time.Millisecond
			mu.Unlock()
			switch {
			case p < 2: // crash: the worker's context is the one this hook cancels
				crash := ctx.Value(crashKey{}).(context.CancelFunc)
				crash()
				return ctx.Err()
			case p < 4: // slow
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}
		app := hookApp{onMap: chaos, onReduce: chaos}
		start := func() {
			tc.addCrashableWorker(app)
		}
		for range 3 {
			start()
		}
		deadline := time.After(30 * time.Second)
		restarts := 0
	loop:
		for {
			select {
			case err := <-tc.runCh:
				tc.runCh <- err
				if err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
				break loop
			case <-tc.crashed:
				restarts++
				start()
			case <-deadline:
				t.Fatalf("seed %d: job not done: %v", seed, tc.c.Progress())
			}
		}
		checkWordCount(t, files, out, 5)
		t.Logf("seed %d: %d crashes; %v", seed, restarts, tc.c.Progress())
		tc.shutdown()
	}
}
