package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/kv/kvclient"
	"github.com/flotilla-dev/flotilla/node"
	"github.com/flotilla-dev/flotilla/proto/kvpb"
)

// testTick is the Raft tick of test members: elections time out after
// 10-20 ticks, so a lost leader is replaced within about half a second.
const testTick = "20ms"

// cluster is a KV cluster of separate `flotilla kv serve` processes started
// from one YAML config that the harness writes. Each member has its own
// data directory and a log file (its stdout and stderr, appended across
// restarts) under the test's temp directory. The methods are called from
// the test goroutine only. Cleanup kills every member still running and,
// when the test failed, logs the tail of every member's log.
type cluster struct {
	t         *testing.T
	clusterID uint64
	cfgPath   string
	members   []*member
	sc        *kvclient.Client // for Status calls
}

// member is one member of a cluster.
type member struct {
	id                  uint64
	peer, client, admin string
	dataDir, logPath    string
	starts              int // how many times the harness started it
	// cfgPath is the member's own config file (a member that joined a
	// running cluster); "" means the cluster's shared config.
	cfgPath string

	// cmd is the running (or last) process; nil before the first start.
	cmd *exec.Cmd
	// exited is closed once cmd has exited; state is set before that.
	exited chan struct{}
	state  *os.ProcessState
}

func (m *member) String() string { return fmt.Sprintf("member %d (client %s)", m.id, m.client) }

// running reports whether the member's process has been started and has
// not exited.
func (m *member) running() bool {
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

// newCluster writes the config of an n-member cluster with fresh free
// ports and starts every member. fsync stays on (the default).
func newCluster(t *testing.T, n int, clusterID uint64) *cluster {
	t.Helper()
	dir := t.TempDir()
	addrs, err := node.FreeAddrs(3 * n)
	if err != nil {
		t.Fatalf("free addresses: %v", err)
	}
	c := &cluster{t: t, clusterID: clusterID, cfgPath: filepath.Join(dir, "cluster.yaml")}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "# written by the end-to-end test harness\ncluster-id: %d\nmembers:\n", clusterID)
	var eps []string
	for i := range n {
		m := &member{id: uint64(i + 1), peer: addrs[3*i], client: addrs[3*i+1], admin: addrs[3*i+2],
			dataDir: filepath.Join(dir, fmt.Sprintf("node%d", i+1)), logPath: filepath.Join(dir, fmt.Sprintf("node%d.log", i+1))}
		fmt.Fprintf(&cfg, "  - {id: %d, peer: %s, client: %s, admin: %s}\n", m.id, m.peer, m.client, m.admin)
		c.members = append(c.members, m)
		eps = append(eps, m.client)
	}
	if err := os.WriteFile(c.cfgPath, []byte(cfg.String()), 0o644); err != nil {
		t.Fatalf("writing the cluster config: %v", err)
	}
	c.sc, err = kvclient.New(kvclient.Config{Endpoints: eps, AttemptTimeout: time.Second})
	if err != nil {
		t.Fatalf("status client: %v", err)
	}
	t.Cleanup(c.cleanup)
	for _, m := range c.members {
		c.start(m)
	}
	return c
}

// serveArgs are the arguments that start m from the cluster config.
func (c *cluster) serveArgs(m *member) []string {
	cfg := c.cfgPath
	if m.cfgPath != "" {
		cfg = m.cfgPath
	}
	return []string{"kv", "serve", "--config", cfg, "--id", strconv.FormatUint(m.id, 10),
		"--data-dir", m.dataDir, "--tick", testTick}
}

// start starts m's process on its data directory.
func (c *cluster) start(m *member) {
	c.t.Helper()
	if m.running() {
		c.t.Fatalf("starting %v: it is already running (pid %d)", m, m.cmd.Process.Pid)
	}
	m.starts++
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatalf("log of %v: %v", m, err)
	}
	fmt.Fprintf(logf, "=== harness: start #%d of member %d at %s\n", m.starts, m.id, time.Now().Format(time.StampMilli))
	m.cmd = exec.Command(flotillaBin, c.serveArgs(m)...)
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	m.cmd.Env = cleanEnv()
	m.cmd.SysProcAttr = childAttr()
	if err := m.cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatalf("starting %v: %v", m, err)
	}
	m.exited, m.state = make(chan struct{}), nil
	cmd, exited := m.cmd, m.exited
	go func() {
		cmd.Wait() // the exit status is in cmd.ProcessState
		m.state = cmd.ProcessState
		logf.Close()
		close(exited)
	}()
}

// mark appends a harness note to m's log, so that a dumped log shows what
// the test did when.
func (c *cluster) mark(m *member, format string, args ...any) {
	f, err := os.OpenFile(m.logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "=== harness: %s at %s\n", fmt.Sprintf(format, args...), time.Now().Format(time.StampMilli))
}

// kill sends SIGKILL to m and waits until its process is gone.
func (c *cluster) kill(m *member) {
	c.t.Helper()
	if !m.running() {
		c.t.Fatalf("killing %v: it is not running", m)
	}
	c.mark(m, "kill -9 of member %d", m.id)
	if err := m.cmd.Process.Kill(); err != nil {
		c.t.Fatalf("kill -9 %v: %v", m, err)
	}
	if _, err := c.waitExit(m, 10*time.Second); err != nil {
		c.t.Fatalf("kill -9 %v: %v", m, err)
	}
}

// stop sends SIGTERM to m and fails the test unless it exits with status 0
// within 15 s.
func (c *cluster) stop(m *member) {
	c.t.Helper()
	if !m.running() {
		c.t.Fatalf("stopping %v: it is not running", m)
	}
	c.mark(m, "SIGTERM to member %d", m.id)
	start := time.Now()
	if err := m.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatalf("SIGTERM to %v: %v", m, err)
	}
	st, err := c.waitExit(m, 15*time.Second)
	if err != nil {
		c.t.Fatalf("SIGTERM to %v: %v\nlog tail:\n%s", m, err, tailFile(m.logPath, 30))
	}
	if st.ExitCode() != 0 {
		c.t.Fatalf("SIGTERM to %v: exit status %d (%v), want 0\nlog tail:\n%s", m, st.ExitCode(), st, tailFile(m.logPath, 30))
	}
	c.t.Logf("%v stopped cleanly on SIGTERM in %v", m, time.Since(start).Round(time.Millisecond))
}

// waitExit waits for m's process to exit; after the timeout it kills it
// and returns an error.
func (c *cluster) waitExit(m *member, within time.Duration) (*os.ProcessState, error) {
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case <-m.exited:
		return m.state, nil
	case <-timer.C:
		m.cmd.Process.Kill()
		<-m.exited
		return m.state, fmt.Errorf("did not exit within %v (killed)", within)
	}
}

// cleanup kills every member still running and, if the test failed, logs
// the tail of every member's log.
func (c *cluster) cleanup() {
	for _, m := range c.members {
		if m.running() {
			m.cmd.Process.Kill()
			<-m.exited
		}
	}
	c.sc.Close()
	for _, m := range c.members {
		checkNoRace(c.t, m.logPath)
	}
	if c.t.Failed() {
		for _, m := range c.members {
			c.t.Logf("log of %v (%s), last lines:\n%s", m, m.logPath, tailFile(m.logPath, 40))
		}
	}
}

// checkAlive fails the test if a member the harness started has exited on
// its own.
func (c *cluster) checkAlive(ms ...*member) {
	c.t.Helper()
	for _, m := range ms {
		if m.cmd != nil && !m.running() {
			c.t.Fatalf("%v exited unexpectedly (%v)\nlog tail:\n%s", m, m.state, tailFile(m.logPath, 30))
		}
	}
}

// status asks m for its status (one attempt of at most a second).
func (c *cluster) status(m *member) (*kvpb.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.sc.Status(ctx, m.client)
}

// running returns the members whose processes are running.
func (c *cluster) running() []*member {
	var ms []*member
	for _, m := range c.members {
		if m.running() {
			ms = append(ms, m)
		}
	}
	return ms
}

// waitLeader polls the running members until one reports itself leader
// and every running member answers, and returns the leader (the one with
// the highest term if several claim it).
func (c *cluster) waitLeader(within time.Duration) *member {
	c.t.Helper()
	return c.waitLeaderOf(within, nil)
}

// waitLeaderOf is waitLeader over the members ms (nil: the running
// members, as they are at each poll); each of ms must stay running.
func (c *cluster) waitLeaderOf(within time.Duration, ms []*member) *member {
	c.t.Helper()
	var leader *member
	poll(c.t, within, "waiting for a leader", func() (bool, string) {
		set := ms
		if set == nil {
			set = c.running()
		}
		c.checkAlive(set...)
		var best *kvpb.StatusResponse
		var states []string
		answered := 0
		for _, m := range set {
			st, err := c.status(m)
			if err != nil {
				states = append(states, fmt.Sprintf("%d: %v", m.id, err))
				continue
			}
			answered++
			states = append(states, fmt.Sprintf("%d: %s term %d leader %d applied %d", m.id, st.Role, st.Term, st.Leader, st.AppliedIndex))
			if st.Role == "leader" && (best == nil || st.Term > best.Term) {
				best, leader = st, m
			}
		}
		return best != nil && answered == len(set), strings.Join(states, "; ")
	})
	return leader
}

// client returns a client of the given members (every member if none),
// closed when the test ends.
func (c *cluster) client(ms ...*member) *kvclient.Client {
	c.t.Helper()
	if len(ms) == 0 {
		ms = c.members
	}
	var eps []string
	for _, m := range ms {
		eps = append(eps, m.client)
	}
	cl, err := kvclient.New(kvclient.Config{Endpoints: eps, AttemptTimeout: time.Second})
	if err != nil {
		c.t.Fatalf("client of %v: %v", eps, err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// waitConverged polls every member until all report the same applied
// index twice in a row, and then fails unless they report the same state
// hash and key count. It returns the common applied index.
//
// Status reads the applied index, key count and hash one after another,
// not atomically; a member whose applied index is the same in two
// consecutive answers was at that index when the first answer's hash was
// read, so only such answers are compared.
func (c *cluster) waitConverged(within time.Duration) uint64 {
	c.t.Helper()
	return c.waitConvergedOf(within, c.members)
}

// waitConvergedOf is waitConverged over the members ms only (the others
// may have been removed from the cluster).
func (c *cluster) waitConvergedOf(within time.Duration, ms []*member) uint64 {
	c.t.Helper()
	var applied uint64
	poll(c.t, within, "waiting for every member to apply the same log", func() (bool, string) {
		c.checkAlive(ms...)
		var first, second []*kvpb.StatusResponse
		for _, sts := range []*[]*kvpb.StatusResponse{&first, &second} {
			for _, m := range ms {
				st, err := c.status(m)
				if err != nil {
					return false, fmt.Sprintf("member %d: %v", m.id, err)
				}
				*sts = append(*sts, st)
			}
		}
		var states []string
		for i, st := range first {
			states = append(states, fmt.Sprintf("member %d: applied %d commit %d keys %d hash %016x", ms[i].id, st.AppliedIndex, st.CommitIndex, st.Keys, st.StateHash))
		}
		for i, st := range first {
			if st.AppliedIndex != first[0].AppliedIndex || second[i].AppliedIndex != st.AppliedIndex {
				return false, strings.Join(states, "; ")
			}
		}
		for _, st := range first[1:] {
			if st.StateHash != first[0].StateHash || st.Keys != first[0].Keys {
				c.t.Fatalf("members at the same applied index %d disagree on the state:\n  %s", st.AppliedIndex, strings.Join(states, "\n  "))
			}
		}
		applied = first[0].AppliedIndex
		c.t.Logf("members converged: %s", strings.Join(states, "; "))
		return true, ""
	})
	return applied
}
