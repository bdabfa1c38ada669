package mapreduce

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var quiet = slog.New(slog.DiscardHandler)

// testCluster is a coordinator and in-process workers on 127.0.0.1.
type testCluster struct {
	t     testing.TB
	c     *Coordinator
	addr  string
	ctx   context.Context
	stop  context.CancelFunc
	runCh chan error

	mu      sync.Mutex
	workers []*testWorker
	crashed chan struct{} // see addCrashableWorker
}

type testWorker struct {
	kill context.CancelFunc
	done chan error
}

// fastConfig returns a config whose timeouts suit tests.
func fastConfig(job Job, inputs []string, out string) Config {
	return Config{Job: job, Inputs: inputs, OutDir: out, SplitSize: 32 << 10,
		Heartbeat: 20 * time.Millisecond, WorkerTimeout: 300 * time.Millisecond,
		BackupAfter: time.Minute, Logger: quiet}
}

func startCluster(t testing.TB, cfg Config) *testCluster {
	t.Helper()
	c, err := NewCoordinator(cfg)
	if err != nil {
		t.Fatalf("NewCoordinator: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	tc := &testCluster{t: t, c: c, addr: lis.Addr().String(), ctx: ctx, stop: stop, runCh: make(chan error, 1)}
	go func() { tc.runCh <- c.Run(ctx, lis) }()
	t.Cleanup(tc.shutdown)
	return tc
}

// addWorker starts a worker; cfg's Coordinator and Logger are filled in.
func (tc *testCluster) addWorker(cfg WorkerConfig) int {
	cfg.Coordinator = tc.addr
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	if cfg.Dir == "" {
		cfg.Dir = tc.t.TempDir()
	}
	ctx, kill := context.WithCancel(tc.ctx)
	w := &testWorker{kill: kill, done: make(chan error, 1)}
	go func() { w.done <- RunWorker(ctx, cfg) }()
	tc.mu.Lock()
	defer tc.mu.Unlock()
	tc.workers = append(tc.workers, w)
	return len(tc.workers) - 1
}

// kill crashes worker i: it stops at once and reports nothing.
func (tc *testCluster) kill(i int) {
	tc.mu.Lock()
	w := tc.workers[i]
	tc.mu.Unlock()
	w.kill()
	err := <-w.done
	w.done <- err
}

// wait waits for the job, at most d, and returns Run's result.
func (tc *testCluster) wait(d time.Duration) error {
	tc.t.Helper()
	select {
	case err := <-tc.runCh:
		tc.runCh <- err
		return err
	case <-time.After(d):
		tc.t.Fatalf("job not done after %v: %v", d, tc.c.Progress())
		return nil
	}
}

func (tc *testCluster) shutdown() {
	tc.stop()
	if err := <-tc.runCh; err != nil {
		tc.runCh <- err
	} else {
		tc.runCh <- nil
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	for _, w := range tc.workers {
		w.kill()
		err := <-w.done
		w.done <- err
	}
}

// corpus writes n files of random words (Zipf-ish over a vocabulary)
// totalling about size bytes, and returns their paths.
func corpus(t testing.TB, seed uint64, n, size int) []string {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	vocab := make([]string, 2000)
	for i := range vocab {
		vocab[i] = fmt.Sprintf("w%x", r.Uint32()%100000)
	}
	vocab = append(vocab, "Grüße", "naïve", "ÇA", "x")
	dir := t.TempDir()
	var files []string
	for i := range n {
		var b strings.Builder
		for b.Len() < size/n {
			for j := range 1 + r.IntN(15) {
				if j > 0 {
					b.WriteString([]string{" ", "  ", ", ", ". ", "\t", "--"}[r.IntN(6)])
				}
				b.WriteString(vocab[int(float64(len(vocab))*r.Float64()*r.Float64())])
			}
			b.WriteString("\n")
		}
		p := filepath.Join(dir, fmt.Sprintf("doc%d.txt", i))
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	return files
}

// refWordCount counts the words of files sequentially.
func refWordCount(t *testing.T, files []string) map[string]string {
	t.Helper()
	counts := map[string]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range Words(string(b)) {
			counts[w]++
		}
	}
	out := map[string]string{}
	for w, n := range counts {
		out[w] = fmt.Sprint(n)
	}
	return out
}

// readOutput reads every partition of out as key → value, checking that
// the job's output is complete and each key lands in its partition.
func readOutput(t *testing.T, out string, reduces int) map[string]string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(out, SuccessFile)); err != nil {
		t.Fatalf("no %s: %v", SuccessFile, err)
	}
	got := map[string]string{}
	for r := range reduces {
		f, err := os.Open(filepath.Join(out, PartitionFile(r)))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), " ")
			if _, dup := got[k]; dup {
				t.Errorf("key %q appears twice", k)
			}
			if p := Partition(k, reduces); p != r {
				t.Errorf("key %q in partition %d, want %d", k, r, p)
			}
			got[k] = v
		}
		f.Close()
	}
	return got
}

func checkWordCount(t *testing.T, files []string, out string, reduces int) {
	t.Helper()
	if diff := cmp.Diff(refWordCount(t, files), readOutput(t, out, reduces)); diff != "" {
		t.Errorf("word counts differ from the sequential reference (-want +got):\n%s", diff)
	}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s", d, what)
		case <-tick.C:
		}
	}
}

type crashKey struct{}

// addCrashableWorker starts a worker running app whose hooks find, under
// crashKey in their context, a function that crashes the worker. A crashed
// worker is announced on tc.crashed.
func (tc *testCluster) addCrashableWorker(app hookApp) {
	ctx, crash := context.WithCancel(tc.ctx)
	apps := map[string]AppFactory{"wc": func(Job) (App, error) { return crashingApp{app, ctx, crash}, nil }}
	cfg := WorkerConfig{Coordinator: tc.addr, Logger: quiet, Dir: tc.t.TempDir(), Apps: apps}
	w := &testWorker{kill: crash, done: make(chan error, 1)}
	tc.mu.Lock()
	if tc.crashed == nil {
		tc.crashed = make(chan struct{}, 100)
	}
	crashed := tc.crashed
	tc.workers = append(tc.workers, w)
	tc.mu.Unlock()
	go func() {
		err := RunWorker(ctx, cfg)
		w.done <- err
		if err != nil && tc.ctx.Err() == nil {
			crashed <- struct{}{}
		}
	}()
}

// crashingApp passes the worker's crash function to the hooks.
type crashingApp struct {
	hookApp
	wctx  context.Context
	crash context.CancelFunc
}

func (c crashingApp) Map(ctx context.Context, in Split, r io.Reader, emit Emit) error {
	return c.hookApp.Map(context.WithValue(ctx, crashKey{}, c.crash), in, r, emit)
}

func (c crashingApp) Reduce(ctx context.Context, pairs iter.Seq2[string, string], emit Emit) error {
	return c.hookApp.Reduce(context.WithValue(ctx, crashKey{}, c.crash), pairs, emit)
}
