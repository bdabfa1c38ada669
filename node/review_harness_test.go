package node

// The harness of review_test.go: a cluster safe for concurrent use, a
// recording state machine and the checks the review tests share.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/raft"
)

// recMachine records every command it applies. Its result for a command is
// the command's own data, so a client can tell whether it got the result of
// its own entry. It checks that indexes strictly increase (an entry applied
// twice, or applied after a snapshot that already holds it, is a violation).
type recMachine struct {
	mu        sync.Mutex
	lastIndex uint64
	hash      uint64
	cmds      []string       // in apply order
	seen      map[string]int // command -> times applied
	restores  int
	violation string
	// block, if set, is called (without mu) for every command before it is
	// applied.
	block func(Command)
}

func newRecMachine() *recMachine { return &recMachine{seen: map[string]int{}} }

func (m *recMachine) Apply(cmds []Command) [][]byte {
	out := make([][]byte, len(cmds))
	for i, c := range cmds {
		if m.block != nil {
			m.block(c)
		}
		m.mu.Lock()
		if c.Index <= m.lastIndex && m.violation == "" {
			m.violation = fmt.Sprintf("applied index %d after index %d (double apply or apply before restore)", c.Index, m.lastIndex)
		}
		m.lastIndex = c.Index
		h := fnv.New64a()
		var b [16]byte
		binary.BigEndian.PutUint64(b[:], m.hash)
		binary.BigEndian.PutUint64(b[8:], c.Index)
		h.Write(b[:])
		h.Write(c.Data)
		m.hash = h.Sum64()
		s := string(c.Data)
		m.cmds = append(m.cmds, s)
		m.seen[s]++
		m.mu.Unlock()
		out[i] = bytes.Clone(c.Data)
	}
	return out
}

func (m *recMachine) Snapshot() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := binary.BigEndian.AppendUint64(nil, m.lastIndex)
	b = binary.BigEndian.AppendUint64(b, m.hash)
	b = binary.AppendUvarint(b, uint64(len(m.cmds)))
	for _, c := range m.cmds {
		b = binary.AppendUvarint(b, uint64(len(c)))
		b = append(b, c...)
	}
	return b, nil
}

func (m *recMachine) Restore(data []byte) error {
	if len(data) < 16 {
		return fmt.Errorf("recMachine: snapshot of %d bytes", len(data))
	}
	last, hash := binary.BigEndian.Uint64(data), binary.BigEndian.Uint64(data[8:])
	p := data[16:]
	n, k := binary.Uvarint(p)
	if k <= 0 {
		return errors.New("recMachine: bad count")
	}
	p = p[k:]
	cmds := make([]string, 0, n)
	seen := map[string]int{}
	for range n {
		l, k := binary.Uvarint(p)
		if k <= 0 || uint64(len(p)-k) < l {
			return errors.New("recMachine: bad command")
		}
		s := string(p[k : k+int(l)])
		p = p[k+int(l):]
		cmds = append(cmds, s)
		seen[s]++
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastIndex, m.hash, m.cmds, m.seen = last, hash, cmds, seen
	m.restores++
	return nil
}

type recState struct {
	last, hash uint64
	count      int
	violation  string
	restores   int
}

func (m *recMachine) state() recState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return recState{m.lastIndex, m.hash, len(m.cmds), m.violation, m.restores}
}

func (m *recMachine) times(cmd string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seen[cmd]
}

// rvCluster is a LocalCluster-like harness that is safe for concurrent use
// (clients read the node list while a chaos goroutine crashes and restarts
// nodes) and that runs recMachines.
type rvCluster struct {
	t     *testing.T
	mu    sync.Mutex
	nodes []*Node
	sms   []*recMachine
	cfgs  []Config
	// installs counts snapshots received from a leader and installed
	// (wal.Stats.SnapshotsInstalled) by node instances that have stopped.
	installs atomic.Uint64
}

func newRVCluster(t *testing.T, n int, tweak func(*Config)) *rvCluster {
	t.Helper()
	addrs, err := FreeAddrs(n)
	if err != nil {
		t.Fatal(err)
	}
	peers := map[uint64]string{}
	for i, a := range addrs {
		peers[uint64(i+1)] = a
	}
	dir := t.TempDir()
	c := &rvCluster{t: t}
	for i := range n {
		cfg := Config{
			ID: uint64(i + 1), ClusterID: 0x5e71e3, Peers: peers,
			DataDir:      filepath.Join(dir, fmt.Sprintf("node%d", i+1)),
			TickInterval: 20 * time.Millisecond, ElectionTicks: 10, HeartbeatTicks: 1,
			Seed:   uint64(i + 1),
			Logger: slog.New(slog.DiscardHandler),
		}
		if tweak != nil {
			tweak(&cfg)
		}
		c.cfgs = append(c.cfgs, cfg)
		c.nodes = append(c.nodes, nil)
		c.sms = append(c.sms, nil)
	}
	t.Cleanup(c.stopAll)
	for i := range n {
		if err := c.restart(i + 1); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (c *rvCluster) restart(id int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nodes[id-1] != nil {
		return fmt.Errorf("node %d is running", id)
	}
	sm := newRecMachine()
	n, err := Start(c.cfgs[id-1], sm)
	if err != nil {
		return fmt.Errorf("restarting node %d: %w", id, err)
	}
	c.nodes[id-1], c.sms[id-1] = n, sm
	return nil
}

// take removes node id from the list and returns it, so that clients stop
// picking it before it goes down.
func (c *rvCluster) take(id int) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[id-1]
	c.nodes[id-1] = nil
	return n
}

func (c *rvCluster) crash(id int) {
	if n := c.take(id); n != nil {
		n.crash()
		c.installs.Add(n.wal.Stats().SnapshotsInstalled)
		if err := n.Err(); err != nil {
			c.t.Errorf("node %d had failed before its crash: %v", id, err)
		}
	}
}

func (c *rvCluster) stop(id int) {
	if n := c.take(id); n != nil {
		if err := n.Stop(); err != nil {
			c.t.Errorf("stopping node %d: %v", id, err)
		}
		c.installs.Add(n.wal.Stats().SnapshotsInstalled)
	}
}

func (c *rvCluster) stopAll() {
	for i := range c.nodes {
		c.stop(i + 1)
	}
}

func (c *rvCluster) running() ([]*Node, []*recMachine) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ns []*Node
	var ms []*recMachine
	for i, n := range c.nodes {
		if n != nil {
			ns, ms = append(ns, n), append(ms, c.sms[i])
		}
	}
	return ns, ms
}

// leader returns a running node that believes it leads, or nil.
func (c *rvCluster) leader() *Node {
	ns, _ := c.running()
	for _, n := range ns {
		if n.Status().Role == raft.RoleLeader {
			return n
		}
	}
	return nil
}

func (c *rvCluster) waitLeader(d time.Duration) *Node {
	c.t.Helper()
	deadline := time.After(d)
	for {
		if l := c.leader(); l != nil {
			return l
		}
		select {
		case <-deadline:
			c.t.Fatalf("no leader within %v", d)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// waitCaughtUp waits until node id applied everything the leader had
// committed when the call began.
func (c *rvCluster) waitCaughtUp(id int, d time.Duration) {
	c.t.Helper()
	want := c.waitLeader(d).Status().Commit
	deadline := time.After(d)
	for {
		c.mu.Lock()
		sm := c.sms[id-1]
		c.mu.Unlock()
		if st := sm.state(); st.last >= want {
			return
		}
		select {
		case <-deadline:
			c.t.Fatalf("node %d did not apply up to %d within %v (at %d)", id, want, d, sm.state().last)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// outcomes records what clients were told.
type outcomes struct {
	mu      sync.Mutex
	acked   []string // result was the command's own data
	lost    []string // ErrProposalLost: must never be applied
	stopped []string // ErrStopped: outcome unknown
	n       atomic.Int64
}

func (o *outcomes) add(list *[]string, s string) {
	o.mu.Lock()
	*list = append(*list, s)
	o.mu.Unlock()
}

// runClients starts k clients that propose unique commands to whichever node
// leads until stop is closed. Unexpected errors and wrong results fail t.
func (c *rvCluster) runClients(k int, prefix string, stop <-chan struct{}, o *outcomes) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range k {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				l := c.leader()
				if l == nil {
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Millisecond):
					}
					continue
				}
				data := fmt.Sprintf("%s-%d-%d", prefix, w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				res, err := l.Propose(ctx, []byte(data))
				cancel()
				switch {
				case err == nil:
					if string(res) != data {
						c.t.Errorf("proposal %q got the result of another entry: %q", data, res)
					}
					o.add(&o.acked, data)
					o.n.Add(1)
				case errors.Is(err, ErrProposalLost):
					o.add(&o.lost, data)
				case errors.Is(err, ErrStopped):
					o.add(&o.stopped, data)
				case errors.Is(err, raft.ErrNotLeader), errors.Is(err, ErrOutcomeUnknown),
					errors.Is(err, context.DeadlineExceeded):
				default:
					c.t.Errorf("proposal %q: unexpected error %v", data, err)
				}
			}
		})
	}
	return &wg
}

// waitProgress waits until at least more acks arrived after the call.
func waitProgress(t *testing.T, o *outcomes, more int64, d time.Duration) {
	t.Helper()
	want := o.n.Load() + more
	deadline := time.After(d)
	for o.n.Load() < want {
		select {
		case <-deadline:
			t.Fatalf("no progress: %d acks within %v, want %d", o.n.Load(), d, want)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// checkConverged waits until every running node applied the same log and
// checks the outcomes against every replica.
func (c *rvCluster) checkConverged(o *outcomes, d time.Duration) {
	c.t.Helper()
	deadline := time.After(d)
	for {
		_, ms := c.running()
		var sts []recState
		same := len(ms) == len(c.nodes)
		for _, m := range ms {
			st := m.state()
			sts = append(sts, st)
			if st.hash != sts[0].hash || st.last != sts[0].last {
				same = false
			}
		}
		if same {
			break
		}
		select {
		case <-deadline:
			c.t.Fatalf("replicas did not converge within %v: %+v", d, sts)
		case <-time.After(10 * time.Millisecond):
		}
	}
	_, ms := c.running()
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, m := range ms {
		st := m.state()
		if st.violation != "" {
			c.t.Errorf("replica %d: %s", i+1, st.violation)
		}
		if st.count < len(o.acked) {
			c.t.Errorf("replica %d applied %d commands, fewer than the %d acknowledged", i+1, st.count, len(o.acked))
		}
		missing := 0
		for _, a := range o.acked {
			if m.times(a) == 0 {
				if missing++; missing <= 3 {
					c.t.Errorf("replica %d lost acknowledged command %q", i+1, a)
				}
			}
		}
		for _, l := range o.lost {
			if k := m.times(l); k > 0 {
				c.t.Errorf("replica %d applied %q (%d times), which Propose reported as ErrProposalLost", i+1, l, k)
			}
		}
	}
	appliedStopped := 0
	for _, s := range o.stopped {
		if ms[0].times(s) > 0 {
			appliedStopped++
		}
	}
	c.t.Logf("%d acked, %d lost, %d ErrStopped (%d of those applied anyway); replicas at index %d, %d commands",
		len(o.acked), len(o.lost), len(o.stopped), appliedStopped, ms[0].state().last, ms[0].state().count)
}
