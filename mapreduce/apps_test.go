package mapreduce

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// runJob runs a job on n in-process workers and returns Run's error.
func runJob(t *testing.T, cfg Config, n int, wcfg WorkerConfig) (*testCluster, error) {
	t.Helper()
	tc := startCluster(t, cfg)
	for range n {
		tc.addWorker(wcfg)
	}
	return tc, tc.wait(30 * time.Second)
}

func writeFiles(t *testing.T, contents ...string) []string {
	t.Helper()
	dir := t.TempDir()
	var files []string
	for i, c := range contents {
		p := filepath.Join(dir, fmt.Sprintf("in%d.txt", i))
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	return files
}

// TestExecWordCount runs word count as shell and awk scripts, with a
// combiner, and checks it against the sequential reference.
func TestExecWordCount(t *testing.T) {
	var a, b strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&a, "alpha beta w%d gamma\n", i%97)
		fmt.Fprintf(&b, "beta  w%d\tdelta\n", i%31)
	}
	files := writeFiles(t, a.String(), b.String())
	out := filepath.Join(t.TempDir(), "out")
	sum := `awk -F'\t' '{c[$1]+=$2} END {for (k in c) print k "\t" c[k]}'`
	job := Job{App: "exec", Reduces: 3,
		MapCommand:    `tr -s ' \t' '\n\n' | awk 'NF {print $1 "\t1"}'`,
		ReduceCommand: sum, CombineCommand: sum}
	cfg := fastConfig(job, files, out)
	cfg.SplitSize = 8 << 10
	if _, err := runJob(t, cfg, 3, WorkerConfig{AllowExec: true}); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, w := range strings.Fields(string(b)) {
			want[w]++
		}
	}
	wantS := map[string]string{}
	for k, v := range want {
		wantS[k] = fmt.Sprint(v)
	}
	if diff := cmp.Diff(wantS, readOutput(t, out, 3)); diff != "" {
		t.Errorf("exec word count (-want +got):\n%s", diff)
	}
}

// TestExecFailure runs a map command that fails: the job fails after
// MaxFailures attempts with the command's stderr in the error, and leaves
// no output that looks complete.
func TestExecFailure(t *testing.T) {
	files := writeFiles(t, "a b c\n")
	out := filepath.Join(t.TempDir(), "out")
	job := Job{App: "exec", Reduces: 2, MapCommand: `echo "bad record at line 1" >&2; exit 3`, ReduceCommand: "cat"}
	_, err := runJob(t, fastConfig(job, files, out), 2, WorkerConfig{AllowExec: true})
	if err == nil || !strings.Contains(err.Error(), "bad record at line 1") || !strings.Contains(err.Error(), "failed 3 times") {
		t.Fatalf("Run = %v, want the command's failure", err)
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != 0 {
		t.Errorf("output directory holds %v after a failed job", ents)
	}
}

// TestExecReduceFailure fails in the reduce command, after some
// partitions may have been committed: they are removed.
func TestExecReduceFailure(t *testing.T) {
	files := writeFiles(t, "a b c d e f g h\n")
	out := filepath.Join(t.TempDir(), "out")
	job := Job{App: "exec", Reduces: 4, MapCommand: `tr ' ' '\n'`, ReduceCommand: `if grep -q '^a'; then exit 1; fi`}
	_, err := runJob(t, fastConfig(job, files, out), 2, WorkerConfig{AllowExec: true})
	if err == nil || !strings.Contains(err.Error(), "reduce task") {
		t.Fatalf("Run = %v, want a reduce failure", err)
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != 0 {
		t.Errorf("output directory holds %v after a failed job", ents)
	}
}

func TestExecNotAllowed(t *testing.T) {
	files := writeFiles(t, "a\n")
	tc := startCluster(t, fastConfig(Job{App: "exec", Reduces: 1, MapCommand: "cat", ReduceCommand: "cat"}, files, filepath.Join(t.TempDir(), "out")))
	i := tc.addWorker(WorkerConfig{})
	if err := <-tc.workers[i].done; !errors.Is(err, ErrExecNotAllowed) {
		t.Errorf("worker = %v, want ErrExecNotAllowed", err)
	}
	tc.workers[i].done <- nil
}

func TestGrep(t *testing.T) {
	files := corpus(t, 7, 3, 200<<10)
	out := filepath.Join(t.TempDir(), "out")
	if _, err := runJob(t, fastConfig(Job{App: "grep", Reduces: 2, GrepPattern: `w1[0-3]`}, files, out), 2, WorkerConfig{}); err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`w1[0-3]`)
	var want []string
	for _, f := range files {
		b, _ := os.ReadFile(f)
		off := 0
		for _, line := range strings.SplitAfter(string(b), "\n") {
			if re.MatchString(line) {
				want = append(want, fmt.Sprintf("%s %d:%s", f, off, strings.TrimSuffix(line, "\n")))
			}
			off += len(line)
		}
	}
	var got []string
	for r := range 2 {
		b, err := os.ReadFile(filepath.Join(out, PartitionFile(r)))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")...)
	}
	got = stableByFile(got)
	if diff := cmp.Diff(stableByFile(want), got); diff != "" || len(want) == 0 {
		t.Errorf("grep (-want +got):\n%s", diff)
	}
}

// stableByFile orders lines by file name only, keeping their order within
// a file (which the output must get right).
func stableByFile(lines []string) []string {
	out := append([]string(nil), lines...)
	sort.SliceStable(out, func(i, j int) bool {
		return strings.SplitN(out[i], " ", 2)[0] < strings.SplitN(out[j], " ", 2)[0]
	})
	return out
}

func TestIndex(t *testing.T) {
	files := writeFiles(t, "the cat sat\non the mat\n", "the dog\n", "a cat and a dog\n")
	out := filepath.Join(t.TempDir(), "out")
	if _, err := runJob(t, fastConfig(Job{App: "index", Reduces: 3}, files, out), 2, WorkerConfig{}); err != nil {
		t.Fatal(err)
	}
	f0, f1, f2 := files[0], files[1], files[2]
	want := map[string]string{
		"the": "2 " + f0 + "," + f1, "cat": "2 " + f0 + "," + f2, "sat": "1 " + f0, "on": "1 " + f0,
		"mat": "1 " + f0, "dog": "2 " + f1 + "," + f2, "a": "1 " + f2, "and": "1 " + f2,
	}
	if diff := cmp.Diff(want, readOutput(t, out, 3)); diff != "" {
		t.Errorf("index (-want +got):\n%s", diff)
	}
}

// TestBadJobs checks the errors for jobs that cannot run.
func TestBadJobs(t *testing.T) {
	files := writeFiles(t, "a b\n")
	notDir := files[0]
	nonEmpty := t.TempDir()
	os.WriteFile(filepath.Join(nonEmpty, "old"), nil, 0o644)
	for _, tt := range []struct {
		name   string
		cfg    Config
		target error
		want   string
	}{
		{"missing input", Config{Job: Job{App: "wc", Reduces: 1}, Inputs: []string{"/nonexistent/in.txt"}}, ErrInvalidJob, "/nonexistent/in.txt"},
		{"no inputs", Config{Job: Job{App: "wc", Reduces: 1}}, ErrInvalidJob, "no input"},
		{"unknown app", Config{Job: Job{App: "sort", Reduces: 1}, Inputs: files}, ErrUnknownApp, `"sort"`},
		{"zero reduces", Config{Job: Job{App: "wc"}, Inputs: files}, ErrInvalidJob, "reduces"},
		{"grep without pattern", Config{Job: Job{App: "grep", Reduces: 1}, Inputs: files}, ErrInvalidJob, "pattern"},
		{"bad grep pattern", Config{Job: Job{App: "grep", Reduces: 1, GrepPattern: "("}, Inputs: files}, ErrInvalidJob, "missing closing"},
		{"exec without reduce", Config{Job: Job{App: "exec", Reduces: 1, MapCommand: "cat"}, Inputs: files}, ErrInvalidJob, "reduce command"},
		{"output under a file", Config{Job: Job{App: "wc", Reduces: 1}, Inputs: files, OutDir: filepath.Join(notDir, "out")}, ErrInvalidJob, "output directory"},
		{"output not empty", Config{Job: Job{App: "wc", Reduces: 1}, Inputs: files, OutDir: nonEmpty}, ErrInvalidJob, "not empty"},
		{"input is a directory", Config{Job: Job{App: "wc", Reduces: 1}, Inputs: []string{nonEmpty}, OutDir: t.TempDir()}, ErrInvalidJob, "not a regular file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.cfg.OutDir == "" {
				tt.cfg.OutDir = filepath.Join(t.TempDir(), "out")
			}
			_, err := NewCoordinator(tt.cfg)
			if !errors.Is(err, tt.target) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewCoordinator = %v, want %v mentioning %q", err, tt.target, tt.want)
			}
		})
	}
}

// TestEmptyInput: empty files give no map task and empty partitions.
func TestEmptyInput(t *testing.T) {
	files := writeFiles(t, "", "")
	out := filepath.Join(t.TempDir(), "out")
	if _, err := runJob(t, fastConfig(Job{App: "wc", Reduces: 2}, files, out), 1, WorkerConfig{}); err != nil {
		t.Fatal(err)
	}
	if got := readOutput(t, out, 2); len(got) != 0 {
		t.Errorf("output %v, want none", got)
	}
}

func TestAdminHandler(t *testing.T) {
	files := writeFiles(t, "a b a\n")
	tc, err := runJob(t, fastConfig(Job{App: "wc", Reduces: 1}, files, filepath.Join(t.TempDir(), "out")), 1, WorkerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := tc.c.AdminHandler()
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/metrics": `flotilla_mr_tasks{kind="reduce",state="completed"} 1`,
		"/status":  `"Phase": "done"`,
		"/":        "/debug/pprof/",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("GET %s: %d %q, want %q", path, rec.Code, rec.Body.String(), want)
		}
	}
}

// TestStaleWorkerRefused: a worker of an earlier job (one that expects
// another job ID) is refused by the coordinator and exits with an error.
func TestStaleWorkerRefused(t *testing.T) {
	files := writeFiles(t, "a\n")
	tc := startCluster(t, fastConfig(Job{App: "wc", Reduces: 1}, files, filepath.Join(t.TempDir(), "out")))
	i := tc.addWorker(WorkerConfig{JobID: "0123456789abcdef"})
	err := <-tc.workers[i].done
	tc.workers[i].done <- nil
	if err == nil || !strings.Contains(err.Error(), "not \"0123456789abcdef\"") {
		t.Errorf("stale worker = %v, want a refusal naming its job", err)
	}
	if st := tc.c.Progress(); st.Workers != 0 {
		t.Errorf("stale worker registered: %v", st)
	}
}
