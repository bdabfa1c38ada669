package nemesis

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flotilla-dev/flotilla/kv/kvclient"
	"github.com/flotilla-dev/flotilla/node"
	"github.com/flotilla-dev/flotilla/proto/kvpb"
)

// member is one `flotilla kv serve` process and its addresses. Its fields
// are owned by the goroutine that runs the fault schedule, except exited,
// which the process's waiter closes.
type member struct {
	id                  uint64
	peer, client, admin string
	dataDir, logPath    string
	cmd                 *exec.Cmd
	exited              chan struct{} // closed once cmd has exited
	starts              int
	paused              bool
	// killing is set before the nemesis kills the process, so that its
	// waiter can tell a kill from a crash.
	killing atomic.Bool
}

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

// cluster is the local cluster under test.
type cluster struct {
	opts    Options
	dir     string // cluster.yaml, nodeN/ data directories and nodeN.log files
	cfgPath string
	members []*member
	status  *kvclient.Client // one attempt per Status call
	http    *http.Client

	mu      sync.Mutex
	crashes []string // members that exited without being killed; guarded by mu
}

// startCluster writes the cluster's config with free ports and starts
// every member.
func startCluster(opts Options, dir string) (*cluster, error) {
	addrs, err := node.FreeAddrs(3 * opts.Nodes)
	if err != nil {
		return nil, fmt.Errorf("nemesis: free ports: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("nemesis: %w", err)
	}
	c := &cluster{opts: opts, dir: dir, cfgPath: filepath.Join(dir, "cluster.yaml"),
		http: &http.Client{Timeout: 2 * time.Second}}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "# written by flotilla nemesis\ncluster-id: %d\nmembers:\n", 4242)
	var eps []string
	for i := range opts.Nodes {
		id := uint64(i + 1)
		m := &member{id: id, peer: addrs[3*i], client: addrs[3*i+1], admin: addrs[3*i+2],
			dataDir: filepath.Join(dir, fmt.Sprintf("node%d", id)), logPath: filepath.Join(dir, fmt.Sprintf("node%d.log", id))}
		fmt.Fprintf(&cfg, "  - {id: %d, peer: %s, client: %s, admin: %s}\n", m.id, m.peer, m.client, m.admin)
		c.members = append(c.members, m)
		eps = append(eps, m.client)
	}
	if err := os.WriteFile(c.cfgPath, []byte(cfg.String()), 0o644); err != nil {
		return nil, fmt.Errorf("nemesis: writing the cluster config: %w", err)
	}
	if c.status, err = kvclient.New(kvclient.Config{Endpoints: eps, AttemptTimeout: time.Second}); err != nil {
		return nil, err
	}
	for _, m := range c.members {
		if err := c.start(m); err != nil {
			c.stop()
			return nil, err
		}
	}
	return c, nil
}

func (c *cluster) endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.client)
	}
	return eps
}

// start starts m's process on its data directory.
func (c *cluster) start(m *member) error {
	if m.running() {
		return fmt.Errorf("nemesis: starting member %d: it is already running", m.id)
	}
	m.starts++
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("nemesis: log of member %d: %w", m.id, err)
	}
	fmt.Fprintf(logf, "=== nemesis: start #%d of member %d at %s\n", m.starts, m.id, time.Now().Format(time.StampMilli))
	args := []string{"kv", "serve", "--config", c.cfgPath, "--id", strconv.FormatUint(m.id, 10),
		"--data-dir", m.dataDir, "--tick", c.opts.Tick.String(), "--fault-injection"}
	if c.opts.NoSync {
		args = append(args, "--no-sync")
	}
	cmd := exec.Command(c.opts.Binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("nemesis: starting member %d: %w", m.id, err)
	}
	exited := make(chan struct{})
	m.cmd, m.exited, m.paused = cmd, exited, false
	m.killing.Store(false)
	go func() {
		err := cmd.Wait()
		logf.Close()
		if !m.killing.Load() {
			c.mu.Lock()
			c.crashes = append(c.crashes, fmt.Sprintf("member %d exited on its own (%v; see %s)", m.id, err, m.logPath))
			c.mu.Unlock()
		}
		close(exited)
	}()
	return nil
}

// note appends a line to m's log, so that the log shows what the nemesis
// did when.
func (c *cluster) note(m *member, format string, args ...any) {
	f, err := os.OpenFile(m.logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "=== nemesis: %s: %s\n", time.Now().Format(time.StampMilli), fmt.Sprintf(format, args...))
}

// kill sends m SIGKILL and waits for it to exit.
func (c *cluster) kill(m *member) error {
	if !m.running() {
		return nil
	}
	c.note(m, "kill -9")
	m.killing.Store(true)
	if err := m.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("nemesis: killing member %d: %w", m.id, err)
	}
	select {
	case <-m.exited:
		m.paused = false
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("nemesis: member %d did not exit within 10s of SIGKILL", m.id)
	}
}

// pause stops m with SIGSTOP; resume continues it with SIGCONT.
func (c *cluster) pause(m *member) error {
	c.note(m, "SIGSTOP")
	if err := signalStop(m.cmd.Process); err != nil {
		return fmt.Errorf("nemesis: pausing member %d: %w", m.id, err)
	}
	m.paused = true
	return nil
}

func (c *cluster) resume(m *member) error {
	if !m.paused || !m.running() {
		m.paused = false
		return nil
	}
	c.note(m, "SIGCONT")
	if err := signalCont(m.cmd.Process); err != nil {
		return fmt.Errorf("nemesis: resuming member %d: %w", m.id, err)
	}
	m.paused = false
	return nil
}

// cut sets m's fault filter: it drops its messages to the members in to
// and the messages from the members in from. Empty lists heal m.
func (c *cluster) cut(ctx context.Context, m *member, to, from []uint64) error {
	c.note(m, "cut: drop_to %v drop_from %v", to, from)
	method, body := http.MethodPost, []byte(nil)
	if len(to) == 0 && len(from) == 0 {
		method = http.MethodDelete
	} else {
		body, _ = json.Marshal(map[string][]uint64{"drop_to": to, "drop_from": from})
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+m.admin+"/debug/faults", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("nemesis: fault filter of member %d: %w", m.id, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("nemesis: fault filter of member %d: %s: %s (was it started with --fault-injection?)", m.id, resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

// slowFsync sets m's injected fsync delay (0: none), keeping no cut.
func (c *cluster) slowFsync(ctx context.Context, m *member, ms int64) error {
	c.note(m, "fsync delay %d ms", ms)
	method, body := http.MethodPost, []byte(fmt.Sprintf(`{"fsync_delay_ms":%d}`, ms))
	if ms == 0 {
		method, body = http.MethodDelete, nil
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+m.admin+"/debug/faults", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("nemesis: fault endpoint of member %d: %w", m.id, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("nemesis: fault endpoint of member %d: %s: %s", m.id, resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

// heal resumes every paused member, restarts every stopped one and clears
// every fault filter, retrying a member whose admin endpoint is not up yet
// until ctx ends.
func (c *cluster) heal(ctx context.Context) error {
	for _, m := range c.members {
		if err := c.resume(m); err != nil {
			return err
		}
		if !m.running() {
			if err := c.start(m); err != nil {
				return err
			}
		}
	}
	for _, m := range c.members {
		err := poll(ctx, 50*time.Millisecond, func() error { return c.cut(ctx, m, nil, nil) })
		if err != nil {
			return err
		}
	}
	return nil
}

// leader returns the member a running member names as leader, or nil.
func (c *cluster) leader(ctx context.Context) *member {
	for _, m := range c.members {
		if !m.running() || m.paused {
			continue
		}
		st, err := c.status.Status(ctx, m.client)
		if err != nil || st.Leader == 0 {
			continue
		}
		for _, l := range c.members {
			if l.id == st.Leader {
				return l
			}
		}
	}
	return nil
}

// converged waits until every member reports the same applied index twice
// in a row and the same state hash, and returns the statuses. Status reads
// the applied index and the hash one after another, not atomically, so
// only a member whose index did not move between two answers is compared.
func (c *cluster) converged(ctx context.Context) ([]*kvpb.StatusResponse, error) {
	var final []*kvpb.StatusResponse
	last := "no status yet"
	err := poll(ctx, 100*time.Millisecond, func() error {
		var first, second []*kvpb.StatusResponse
		for _, sts := range []*[]*kvpb.StatusResponse{&first, &second} {
			for _, m := range c.members {
				if !m.running() {
					return fmt.Errorf("member %d is not running (see %s)", m.id, m.logPath)
				}
				st, err := c.status.Status(ctx, m.client)
				if err != nil {
					last = fmt.Sprintf("member %d: %v", m.id, err)
					return errors.New(last)
				}
				*sts = append(*sts, st)
			}
		}
		last = describeStatuses(first)
		for i, st := range first {
			if st.AppliedIndex != first[0].AppliedIndex || second[i].AppliedIndex != st.AppliedIndex || st.AppliedIndex == 0 {
				return errors.New(last)
			}
		}
		final = first
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("nemesis: members did not converge: %s", last)
	}
	return final, nil
}

func describeStatuses(sts []*kvpb.StatusResponse) string {
	var parts []string
	for _, st := range sts {
		parts = append(parts, fmt.Sprintf("member %d: applied %d, %d keys, hash %016x", st.MemberId, st.AppliedIndex, st.Keys, st.StateHash))
	}
	return strings.Join(parts, "; ")
}

// stop kills every member (resuming paused ones first, so that they die at
// once) and closes the status client.
func (c *cluster) stop() {
	for _, m := range c.members {
		if m.running() {
			m.killing.Store(true)
			if m.paused {
				signalCont(m.cmd.Process)
			}
			m.cmd.Process.Kill()
			<-m.exited
		}
	}
	c.status.Close()
	c.http.CloseIdleConnections()
}

// poll calls f every interval until it returns nil or ctx ends, and then
// returns f's last error.
func poll(ctx context.Context, interval time.Duration, f func() error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up: %w)", err, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// crashed returns the members that exited without being killed.
func (c *cluster) crashed() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.crashes)
}
