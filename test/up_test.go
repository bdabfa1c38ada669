package test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// upProc is a running `flotilla up`.
type upProc struct {
	t              *testing.T
	dir            string
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	exited         chan struct{}
	kids           []int // member PIDs, once known
}

// startUp starts `flotilla up --data-dir dir` in the background. Cleanup
// stops it (and, failing that, kills it and its members) and, if the test
// failed, logs its output and its members' logs.
func startUp(t *testing.T, dir string) *upProc {
	t.Helper()
	u := &upProc{t: t, dir: dir, exited: make(chan struct{})}
	u.cmd = exec.Command(flotillaBin, "up", "--data-dir", dir)
	u.cmd.Stdout, u.cmd.Stderr = &u.stdout, &u.stderr
	u.cmd.Env = cleanEnv()
	u.cmd.SysProcAttr = childAttr()
	u.cmd.WaitDelay = 5 * time.Second
	if err := u.cmd.Start(); err != nil {
		t.Fatalf("starting flotilla up: %v", err)
	}
	go func() {
		u.cmd.Wait() // the status is in u.cmd.ProcessState
		close(u.exited)
	}()
	t.Cleanup(u.cleanup)
	return u
}

func (u *upProc) cleanup() {
	select {
	case <-u.exited:
	default:
		u.cmd.Process.Signal(os.Interrupt)
		select {
		case <-u.exited:
		case <-time.After(15 * time.Second):
			u.cmd.Process.Kill()
			<-u.exited
		}
	}
	for _, pid := range u.kids {
		if gone, err := processGone(pid); err == nil && !gone {
			u.t.Errorf("member process %d of flotilla up is still running after up ended; killing it", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	logs, _ := filepath.Glob(filepath.Join(u.dir, "node*.log"))
	for _, l := range logs {
		checkNoRace(u.t, l)
	}
	if u.t.Failed() {
		u.t.Logf("%s", u.report())
	}
}

// report is up's output and the tail of each member log, for a failure.
func (u *upProc) report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "flotilla up --data-dir %s\nstdout:\n%sstderr:\n%s", u.dir, indent(u.stdout.String()), indent(u.stderr.String()))
	logs, _ := filepath.Glob(filepath.Join(u.dir, "node*.log"))
	for _, l := range logs {
		fmt.Fprintf(&b, "%s, last lines:\n%s", l, tailFile(l, 25))
	}
	return b.String()
}

// clusterJSON is the part of `flotilla status --json` the tests read.
type clusterJSON struct {
	ClusterID uint64 `json:"cluster_id"`
	Leader    uint64 `json:"leader"`
	Members   []struct {
		ID        uint64 `json:"id"`
		Endpoint  string `json:"endpoint"`
		Reachable bool   `json:"reachable"`
		Role      string `json:"role"`
	} `json:"members"`
}

// waitReady polls until up's endpoints file exists, `flotilla status`
// shows a leader with all three members reachable, and up itself has
// printed that the cluster is ready (a SIGINT before that makes up exit
// with "interrupted while starting"); it returns the status.
func (u *upProc) waitReady() clusterJSON {
	u.t.Helper()
	start := time.Now()
	var st clusterJSON
	poll(u.t, 60*time.Second, "flotilla up becoming ready", func() (bool, string) {
		select {
		case <-u.exited:
			u.t.Fatalf("flotilla up exited while starting (%v)\n%s", u.cmd.ProcessState, u.report())
		default:
		}
		if _, err := os.Stat(filepath.Join(u.dir, "endpoints")); err != nil {
			return false, err.Error()
		}
		r := runFlotilla(u.t, runOpts{}, "status", "--json", "--data-dir", u.dir, "--timeout", "2s")
		if r.code != 0 {
			return false, r.String()
		}
		st = clusterJSON{}
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
			u.t.Fatalf("status --json printed invalid JSON (%v):\n%s", err, r)
		}
		reachable := 0
		for _, m := range st.Members {
			if m.Reachable {
				reachable++
			}
		}
		if !strings.Contains(u.stdout.String(), "Ctrl-C stops the cluster.") {
			return false, "flotilla up has not printed that it is ready; its stdout:\n" + u.stdout.String()
		}
		return st.Leader != 0 && reachable == 3, r.stdout
	})
	kids, err := childPIDs(u.cmd.Process.Pid)
	switch {
	case errors.Is(err, errors.ErrUnsupported):
	case err != nil:
		u.t.Fatalf("listing the members of flotilla up: %v", err)
	case len(kids) != 3:
		u.t.Fatalf("flotilla up has %d child processes %v, want its 3 members", len(kids), kids)
	}
	u.kids = kids
	u.t.Logf("flotilla up ready after %v: cluster %d, leader %d, member PIDs %v", time.Since(start).Round(time.Millisecond), st.ClusterID, st.Leader, kids)
	return st
}

// interrupt sends SIGINT to up and fails the test unless it exits with
// status 0, its members gone and their client ports closed.
func (u *upProc) interrupt(endpoints []string) {
	u.t.Helper()
	start := time.Now()
	if err := u.cmd.Process.Signal(os.Interrupt); err != nil {
		u.t.Fatalf("SIGINT to flotilla up: %v", err)
	}
	select {
	case <-u.exited:
	case <-time.After(20 * time.Second):
		u.t.Fatalf("flotilla up did not exit within 20s of SIGINT\n%s", u.report())
	}
	if code := u.cmd.ProcessState.ExitCode(); code != 0 {
		u.t.Fatalf("flotilla up exited with status %d after SIGINT, want 0\n%s", code, u.report())
	}
	u.t.Logf("flotilla up exited with status 0 %v after SIGINT", time.Since(start).Round(time.Millisecond))
	for _, pid := range u.kids {
		if gone, err := processGone(pid); err != nil || !gone {
			u.t.Errorf("member process %d still exists after flotilla up exited (err %v)", pid, err)
		}
	}
	for _, ep := range endpoints {
		if conn, err := net.DialTimeout("tcp", ep, time.Second); err == nil {
			conn.Close()
			u.t.Errorf("client port %s still accepts connections after flotilla up exited", ep)
		}
	}
}

// TestUpResumes runs `flotilla up`, uses the cluster through the CLI,
// stops it with SIGINT, and checks that a second run resumes the same
// cluster with its data.
func TestUpResumes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cluster")
	up := startUp(t, dir)
	st := up.waitReady()
	if !strings.Contains(up.stdout.String(), "starting a new 3-member cluster") {
		t.Errorf("first flotilla up printed:\n%swant it to say it is starting a new 3-member cluster", indent(up.stdout.String()))
	}
	b, err := os.ReadFile(filepath.Join(dir, "endpoints"))
	if err != nil {
		t.Fatal(err)
	}
	endpoints := strings.Fields(string(b))
	if len(endpoints) != 3 {
		t.Fatalf("endpoints file lists %q, want 3 addresses", endpoints)
	}

	cli := func(wantCode int, args ...string) result {
		t.Helper()
		r := runFlotilla(t, runOpts{}, append(args, "--data-dir", dir)...)
		if r.code != wantCode {
			t.Fatalf("want exit status %d, got:\n%s", wantCode, r)
		}
		return r
	}
	if r := cli(0, "kv", "put", "greeting", "hello"); !strings.HasPrefix(r.stdout, "OK version=") {
		t.Errorf("kv put printed %q, want OK version=N", r.stdout)
	}
	if r := cli(0, "kv", "get", "greeting"); r.stdout != "hello\n" {
		t.Errorf("kv get greeting printed %q, want %q", r.stdout, "hello\n")
	}
	if r := cli(0, "kv", "scan"); r.stdout != "greeting\thello\n" {
		t.Errorf("kv scan printed %q, want %q", r.stdout, "greeting\thello\n")
	}
	r := cli(1, "kv", "cas", "greeting", "bye", "--expect", "nope")
	if !strings.Contains(r.stderr, "compare failed") || !strings.Contains(r.stderr, `"hello"`) {
		t.Errorf("failed kv cas printed to stderr %q, want a compare failure naming the current value \"hello\"", r.stderr)
	}
	if r := cli(0, "kv", "cas", "lock", "me", "--expect-absent"); !strings.HasPrefix(r.stdout, "OK version=") {
		t.Errorf("kv cas --expect-absent printed %q, want OK version=N", r.stdout)
	}
	r = cli(0, "status", "--json")
	var js clusterJSON
	if err := json.Unmarshal([]byte(r.stdout), &js); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, r)
	}
	if js.ClusterID == 0 || js.ClusterID != st.ClusterID || len(js.Members) != 3 || js.Leader == 0 {
		t.Errorf("status --json: cluster %d, leader %d, %d members; want cluster %d, a leader, 3 members\n%s",
			js.ClusterID, js.Leader, len(js.Members), st.ClusterID, r.stdout)
	}
	// A second up on the same directory is refused while the first runs.
	r = runFlotilla(t, runOpts{}, "up", "--data-dir", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "in use") {
		t.Errorf("a second flotilla up on a directory in use: want exit 1 saying it is in use, got:\n%s", r)
	}

	up.interrupt(endpoints)
	if !strings.Contains(up.stdout.String(), "all members stopped") {
		t.Errorf("flotilla up printed:\n%swant it to report that all members stopped", indent(up.stdout.String()))
	}

	up2 := startUp(t, dir)
	st2 := up2.waitReady()
	if !strings.Contains(up2.stdout.String(), "resuming 3-member cluster") {
		t.Errorf("second flotilla up printed:\n%swant it to say it is resuming the 3-member cluster", indent(up2.stdout.String()))
	}
	if st2.ClusterID != st.ClusterID {
		t.Errorf("the resumed cluster has ID %d, want the first run's %d", st2.ClusterID, st.ClusterID)
	}
	if r := cli(0, "kv", "get", "greeting"); r.stdout != "hello\n" {
		t.Errorf("kv get greeting after resuming printed %q, want %q", r.stdout, "hello\n")
	}
	up2.interrupt(endpoints)
}
