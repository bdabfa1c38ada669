package mapreduce

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	awkMap = `tr -s ' ' '\n' | awk 'NF {print $1 "\t1"}'`
	awkSum = `awk -F'\t' '{c[$1]+=$2} END {for (k in c) print k "\t" c[k]}'`
)

// fieldCounts counts the space-separated words of files.
func fieldCounts(t *testing.T, files []string) map[string]string {
	t.Helper()
	n := map[string]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range strings.Fields(string(b)) {
			n[w]++
		}
	}
	out := map[string]string{}
	for k, v := range n {
		out[k] = strconv.Itoa(v)
	}
	return out
}

func spacedCorpus(t *testing.T, n, lines int) []string {
	var contents []string
	for i := range n {
		var b strings.Builder
		for j := range lines {
			fmt.Fprintf(&b, "the w%d quick w%d fox\n", (i*lines+j)%211, j%17)
		}
		contents = append(contents, b.String())
	}
	return writeFiles(t, contents...)
}

// TestBinaryWorkerSIGKILL runs flotilla mr run with three worker processes
// and kills, with SIGKILL, the worker that runs the first attempt of the
// first map (or reduce) task, where the script parks it: the job completes
// with the right output and reports the re-run. Killed in the reduce
// phase, the worker also takes the map outputs it held with it.
func TestBinaryWorkerSIGKILL(t *testing.T) {
	for _, tt := range []struct {
		name    string
		phase   string
		workers int
	}{{"map", "map", 3}, {"reduce", "reduce", 3}, {"only-worker", "map", 1}} {
		// With one worker, the job finishes only because flotilla mr run
		// starts a new worker in the killed one's place.
		t.Run(tt.name, func(t *testing.T) { testBinarySIGKILL(t, tt.phase, tt.workers) })
	}
}

func testBinarySIGKILL(t *testing.T, phase string, workers int) {
	bin := flotillaBin(t)
	files := spacedCorpus(t, 3, 3000)
	dir := t.TempDir()
	mark, out := filepath.Join(dir, "parked"), filepath.Join(dir, "out")
	park := fmt.Sprintf(`if [ "$MR_KIND" = %[1]s ] && [ "$MR_TASK" = 0 ] && [ "$MR_TRY" = 1 ]; then echo "$PPID $$" > %[2]s.tmp && mv %[2]s.tmp %[2]s; exec sleep 60; fi; `, phase, mark)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"mr", "run", "--app", "exec", "--map", park + awkMap, "--reduce", park + awkSum,
		"--reduces", "3", "--workers", strconv.Itoa(workers), "--split-size", "16KiB", "--heartbeat", "50ms", "--worker-timeout", "500ms", "--out", out}, files...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pids []int
	waitFor(t, 30*time.Second, "the parked "+phase+" task", func() bool {
		b, err := os.ReadFile(mark)
		if err != nil {
			return false
		}
		for _, f := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(f)
			pids = append(pids, n)
		}
		return true
	})
	worker, sleeper := pids[0], pids[1]
	if err := syscall.Kill(worker, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 worker %d: %v", worker, err)
	}
	syscall.Kill(-sleeper, syscall.SIGKILL) // the orphaned script's group
	if err := cmd.Wait(); err != nil {
		t.Fatalf("flotilla mr run: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	if diff := cmp.Diff(fieldCounts(t, files), readOutput(t, out, 3)); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	if !regexp.MustCompile(`rerun [1-9]`).Match(stderr.Bytes()) || !strings.Contains(stdout.String(), "done in") ||
		!strings.Contains(stderr.String(), "starting another") {
		t.Errorf("progress does not show the re-run:\nstdout:\n%s\nstderr:\n%s", &stdout, &stderr)
	}
}

// TestBinaryCoordinatorWorkers runs flotilla mr coordinator, two flotilla
// mr worker processes and flotilla mr status, as on separate machines.
func TestBinaryCoordinatorWorkers(t *testing.T) {
	bin := flotillaBin(t)
	files := spacedCorpus(t, 2, 2000)
	out := filepath.Join(t.TempDir(), "out")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	coord := exec.CommandContext(ctx, bin, append([]string{"mr", "coordinator", "--listen", "127.0.0.1:0", "--app", "wc",
		"--reduces", "2", "--split-size", "8KiB", "--heartbeat", "50ms", "--worker-timeout", "500ms", "--out", out, "-q"}, files...)...)
	stderr, err := coord.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	coord.Stdout = &stdout
	if err := coord.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	if !sc.Scan() {
		t.Fatalf("no output from the coordinator: %v", coord.Wait())
	}
	m := regexp.MustCompile(`job (\w+) listening on (\S+)`).FindStringSubmatch(sc.Text())
	if m == nil {
		t.Fatalf("coordinator said %q", sc.Text())
	}
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		for sc.Scan() {
			t.Log("coordinator:", sc.Text())
		}
	}()
	st, err := exec.CommandContext(ctx, bin, "mr", "status", "--json", "--coordinator", m[2]).Output()
	if err != nil {
		t.Fatalf("flotilla mr status: %v", err)
	}
	var status Status
	if err := json.Unmarshal(st, &status); err != nil || status.JobID != m[1] || status.Phase != "map" || status.Workers != 0 {
		t.Fatalf("status %s: %v", st, err)
	}
	var workers []*exec.Cmd
	for range 2 {
		w := exec.CommandContext(ctx, bin, "mr", "worker", "--coordinator", m[2], "--job", m[1], "--dir", t.TempDir())
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		workers = append(workers, w)
	}
	for i, w := range workers {
		if err := w.Wait(); err != nil {
			t.Errorf("worker %d: %v", i, err)
		}
	}
	<-logged // all of stderr was read: Wait may close the pipe
	if err := coord.Wait(); err != nil {
		t.Fatalf("coordinator: %v", err)
	}
	checkWordCount(t, files, out, 2)
	if !strings.Contains(stdout.String(), "done in") {
		t.Errorf("coordinator stdout: %q", &stdout)
	}
}

// TestBinaryWorkerSIGSTOP pauses (SIGSTOP) the worker process that runs
// the first map task: the coordinator declares it dead and re-runs the
// task; resumed (SIGCONT), the worker learns it was declared dead,
// registers again and helps finish the job, then exits with status 0.
func TestBinaryWorkerSIGSTOP(t *testing.T) {
	bin := flotillaBin(t)
	t0 := time.Now()
	files := spacedCorpus(t, 2, 3000)
	dir := t.TempDir()
	mark, out := filepath.Join(dir, "parked"), filepath.Join(dir, "out")
	mapCmd := fmt.Sprintf(`if [ "$MR_TASK" = 0 ] && [ "$MR_TRY" = 1 ]; then echo "$PPID" > %[1]s.tmp && mv %[1]s.tmp %[1]s; exec sleep 60; fi; %[2]s`, mark, awkMap)
	// Reduces wait for the test, so that the job is not over before the
	// paused worker comes back.
	release := filepath.Join(dir, "release")
	reduceCmd := fmt.Sprintf(`while [ ! -e %s ]; do sleep 0.02; done; %s`, release, awkSum)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	coord := exec.CommandContext(ctx, bin, append([]string{"mr", "coordinator", "--listen", "127.0.0.1:0", "--app", "exec",
		"--map", mapCmd, "--reduce", reduceCmd, "--reduces", "2", "--split-size", "16KiB", "--heartbeat", "50ms",
		"--worker-timeout", "500ms", "--out", out, "-q"}, files...)...)
	stderr, err := coord.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := coord.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	sc.Scan()
	m := regexp.MustCompile(`job (\w+) listening on (\S+)`).FindStringSubmatch(sc.Text())
	if m == nil {
		t.Fatalf("coordinator said %q", sc.Text())
	}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for sc.Scan() {
		}
	}()
	workers := map[int]*exec.Cmd{}
	for range 2 {
		w := exec.CommandContext(ctx, bin, "mr", "worker", "--coordinator", m[2], "--allow-exec", "--dir", t.TempDir())
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		workers[w.Process.Pid] = w
	}
	var parked int
	waitFor(t, 30*time.Second, "the parked map task", func() bool {
		b, err := os.ReadFile(mark)
		parked, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	if workers[parked] == nil {
		t.Fatalf("parked pid %d is not a worker", parked)
	}
	begin := time.Now()
	t.Logf("%v: parked", time.Since(t0))
	syscall.Kill(parked, syscall.SIGSTOP)
	status := func() Status {
		b, err := exec.CommandContext(ctx, bin, "mr", "status", "--json", "--coordinator", m[2]).Output()
		var st Status
		if err == nil {
			json.Unmarshal(b, &st)
		}
		return st
	}
	waitFor(t, 30*time.Second, "the paused worker's task re-run", func() bool {
		st := status()
		return st.Rerun > 0 && st.Workers == 1
	})
	t.Logf("%v: task re-run; resuming the worker", time.Since(begin))
	syscall.Kill(parked, syscall.SIGCONT)
	waitFor(t, 30*time.Second, "the resumed worker to register again", func() bool { return status().Workers == 2 })
	t.Logf("%v: the worker registered again", time.Since(begin))
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for pid, w := range workers {
		if err := w.Wait(); err != nil {
			t.Errorf("worker %d (parked: %v): %v", pid, pid == parked, err)
		}
	}
	t.Logf("%v: workers exited", time.Since(begin))
	<-drained
	if err := coord.Wait(); err != nil {
		t.Fatalf("coordinator: %v", err)
	}
	t.Logf("%v: coordinator exited", time.Since(begin))
	if diff := cmp.Diff(fieldCounts(t, files), readOutput(t, out, 2)); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
}
