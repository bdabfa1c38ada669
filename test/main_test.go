package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// flotillaBin is the binary under test, built once by TestMain.
var flotillaBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "flotilla-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "test: temp dir for the binary:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	flotillaBin = filepath.Join(dir, "flotilla")
	if err := buildBinary(flotillaBin); err != nil {
		fmt.Fprintln(os.Stderr, "test:", err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "test: goroutines leaked by the test process:", err)
			code = 1
		}
	}
	return code
}

// buildBinary builds ./cmd/flotilla from the module root into out (with
// -race when the tests run under the race detector).
func buildBinary(out string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	args := []string{"build", "-o", out}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/flotilla")
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s in %s: %v\n%s", strings.Join(args, " "), root, err, b)
	}
	return nil
}

// moduleRoot finds the directory holding go.mod, from the working
// directory (test/ under go test) upwards.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod in the working directory or above it; run the tests from inside the module")
		}
		dir = parent
	}
}

// result is the outcome of one finished flotilla run.
type result struct {
	args           []string
	code           int
	stdout, stderr string
	elapsed        time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("flotilla %s: exit %d after %v\nstdout:\n%s\nstderr:\n%s",
		quoteArgs(r.args), r.code, r.elapsed.Round(time.Millisecond), indent(r.stdout), indent(r.stderr))
}

// runOpts configures one flotilla run.
type runOpts struct {
	stdin   io.Reader
	timeout time.Duration // default 30 s; the run is killed after it
	env     []string      // extra KEY=VALUE entries
}

// runFlotilla runs the binary to completion and returns its exit status
// and output. It fails the test if the run does not finish within the
// timeout. FLOTILLA_ENDPOINTS is removed from the environment, so that a
// developer's setting cannot leak into a test.
func runFlotilla(t *testing.T, o runOpts, args ...string) result {
	t.Helper()
	if o.timeout == 0 {
		o.timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, flotillaBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &stdout, &stderr, o.stdin
	cmd.Env = append(cleanEnv(), o.env...)
	cmd.SysProcAttr = childAttr()
	cmd.WaitDelay = 5 * time.Second // a grandchild holding the pipes open
	start := time.Now()
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("flotilla %s did not finish within %v (killed)\nstdout:\n%s\nstderr:\n%s", quoteArgs(args), o.timeout, indent(r.stdout), indent(r.stderr))
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running flotilla %s: %v", quoteArgs(args), err)
	}
	return r
}

// cleanEnv is the environment without FLOTILLA_ENDPOINTS.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FLOTILLA_ENDPOINTS=") {
			env = append(env, kv)
		}
	}
	return env
}

// poll calls check until it reports done or the deadline passes; then it
// fails the test with what check last said. check must not block for
// long (bound its own calls with a context).
func poll(t *testing.T, within time.Duration, what string, check func() (done bool, state string)) {
	t.Helper()
	if err := pollErr(within, check); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// pollErr is poll returning an error instead of failing the test.
func pollErr(within time.Duration, check func() (bool, string)) error {
	deadline := time.Now().Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		done, state := check()
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not reached within %v; last state: %s", within, state)
		}
		<-tick.C
	}
}

// syncBuffer is a bytes.Buffer safe for one writer (an exec copier
// goroutine) and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tailFile returns the last n lines of a file, indented, for a failure
// message.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "  (unreadable: " + err.Error() + ")\n"
	}
	return tail(string(b), n)
}

// tail returns the last n lines of s, indented.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d earlier lines)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return indent(strings.Join(lines, "\n"))
}

func indent(s string) string {
	if s == "" {
		return "  (empty)\n"
	}
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}

// quoteArgs shows a command line, truncating huge arguments.
func quoteArgs(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if len(a) > 300 {
			a = fmt.Sprintf("%s...(%d bytes)", a[:40], len(a))
		}
		if strings.ContainsAny(a, " \t\n\"'") || a == "" {
			a = fmt.Sprintf("%q", a)
		}
		b.WriteString(a)
	}
	return b.String()
}

// checkNoRace fails the test if a member log holds a report of the race
// detector (the binary is built with -race when the tests run with it).
func checkNoRace(t *testing.T, logPath string) {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return
	}
	if i := bytes.Index(b, []byte("WARNING: DATA RACE")); i >= 0 {
		t.Errorf("the race detector reported a data race in %s:\n%s", logPath, indent(string(b[i:min(len(b), i+4000)])))
	}
}
