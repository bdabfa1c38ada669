package node

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flotilla-dev/flotilla/raft"
)

// HashMachine is a small deterministic StateMachine: it folds every command
// into a running hash and counts them. Its result for a command is the count
// after it (8 bytes, big-endian). Tests and benchmarks use it to check that
// replicas converge: equal (Count, Hash) means equal command sequences.
type HashMachine struct {
	mu    sync.Mutex
	count uint64
	hash  uint64
}

// Apply implements StateMachine.
func (m *HashMachine) Apply(cmds []Command) [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([][]byte, len(cmds))
	for i, c := range cmds {
		h := fnv.New64a()
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], m.hash)
		h.Write(b[:])
		h.Write(c.Data)
		m.hash = h.Sum64()
		m.count++
		out[i] = binary.BigEndian.AppendUint64(nil, m.count)
	}
	return out
}

// Snapshot implements StateMachine.
func (m *HashMachine) Snapshot() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := binary.BigEndian.AppendUint64(nil, m.count)
	return binary.BigEndian.AppendUint64(b, m.hash), nil
}

// Restore implements StateMachine.
func (m *HashMachine) Restore(data []byte) error {
	if len(data) != 16 {
		return fmt.Errorf("node: HashMachine snapshot has %d bytes, want 16", len(data))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.count, m.hash = binary.BigEndian.Uint64(data), binary.BigEndian.Uint64(data[8:])
	return nil
}

// State returns the number of commands applied and the running hash.
func (m *HashMachine) State() (count, hash uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.count, m.hash
}

// LocalCluster is several Nodes in one process on 127.0.0.1, for tests and
// benchmarks.
type LocalCluster struct {
	Nodes    []*Node // Nodes[i] has ID i+1; nil while stopped
	Machines []*HashMachine
	Configs  []Config
}

// FreeAddrs returns n distinct TCP addresses on 127.0.0.1 whose ports were
// free a moment ago, for servers that will bind them later (tests, `flotilla
// up`, the nemesis).
//
// Where the kernel's ephemeral port range can be read (Linux), the ports are
// picked at random below it: outgoing connections take their local ports
// from that range, and so do listeners on port 0, so a port picked inside it
// can be taken by any connection on the machine between this call and the
// bind (a race that made busy test runs fail with "address already in
// use"). Below the range only another explicit bind can take it. Otherwise,
// or if no port below the range is free, the kernel picks one (port 0).
func FreeAddrs(n int) ([]string, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	lo, hi := reservablePorts()
	var addrs []string
	for range n {
		var l net.Listener
		for try := 0; l == nil && try < 100 && hi > lo; try++ {
			l, _ = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", lo+rand.IntN(hi-lo)))
		}
		if l == nil {
			var err error
			if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
				return nil, err
			}
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

// reservablePorts returns the ports [lo, hi) FreeAddrs picks from: from
// 10000 to the start of the ephemeral range, or an empty range if that
// cannot be read or leaves fewer than 1000 ports.
func reservablePorts() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0
	}
	start, err := strconv.Atoi(f[0])
	if err != nil || start < 11000 {
		return 0, 0
	}
	return 10000, start
}

// StartLocalCluster starts n nodes with data directories under dir. tweak,
// if set, may change each node's Config before it starts.
func StartLocalCluster(n int, dir string, tweak func(*Config)) (*LocalCluster, error) {
	addrs, err := FreeAddrs(n)
	if err != nil {
		return nil, err
	}
	peers := map[uint64]string{}
	for i, a := range addrs {
		peers[uint64(i+1)] = a
	}
	c := &LocalCluster{}
	for i := range n {
		cfg := Config{
			ID: uint64(i + 1), ClusterID: 0xf10711a, Peers: peers,
			DataDir:      filepath.Join(dir, fmt.Sprintf("node%d", i+1)),
			TickInterval: 20 * time.Millisecond, ElectionTicks: 10, HeartbeatTicks: 1,
			Logger: slog.New(slog.DiscardHandler),
		}
		if tweak != nil {
			tweak(&cfg)
		}
		c.Configs = append(c.Configs, cfg)
		c.Machines = append(c.Machines, &HashMachine{})
		c.Nodes = append(c.Nodes, nil)
		if err := c.Restart(i + 1); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

// StartJoiner starts one more node, with the next ID, that joins the
// running cluster (Config.Join): it becomes a member once a
// ChangeMembership on the leader adds it with the returned address.
func (c *LocalCluster) StartJoiner() (id uint64, addr string, err error) {
	addrs, err := FreeAddrs(1)
	if err != nil {
		return 0, "", err
	}
	cfg := c.Configs[0]
	cfg.ID = uint64(len(c.Configs) + 1)
	cfg.Peers = map[uint64]string{}
	for _, m := range c.Configs {
		cfg.Peers[m.ID] = m.Peers[m.ID]
	}
	cfg.Peers[cfg.ID] = addrs[0]
	cfg.Listen, cfg.Join = addrs[0], true
	cfg.DataDir = filepath.Join(filepath.Dir(c.Configs[0].DataDir), fmt.Sprintf("node%d", cfg.ID))
	c.Configs = append(c.Configs, cfg)
	c.Machines = append(c.Machines, &HashMachine{})
	c.Nodes = append(c.Nodes, nil)
	if err := c.Restart(int(cfg.ID)); err != nil {
		return 0, "", err
	}
	return cfg.ID, addrs[0], nil
}

// Restart starts node id again (after Stop or Crash) from its data
// directory, with a fresh state machine.
func (c *LocalCluster) Restart(id int) error {
	c.Machines[id-1] = &HashMachine{}
	n, err := Start(c.Configs[id-1], c.Machines[id-1])
	if err != nil {
		return err
	}
	c.Nodes[id-1] = n
	return nil
}

// StopNode stops node id cleanly.
func (c *LocalCluster) StopNode(id int) error {
	n := c.Nodes[id-1]
	c.Nodes[id-1] = nil
	if n == nil {
		return nil
	}
	return n.Stop()
}

// CrashNode stops node id abruptly: no final flush, files closed as a
// killed process's would be.
func (c *LocalCluster) CrashNode(id int) {
	n := c.Nodes[id-1]
	c.Nodes[id-1] = nil
	if n != nil {
		n.crash()
	}
}

// doneOrNil is n.Done(), or nil (never ready) for a nil node.
func (n *Node) doneOrNil() <-chan struct{} {
	if n == nil {
		return nil
	}
	return n.done
}

// Stop stops every running node.
func (c *LocalCluster) Stop() {
	for _, n := range c.Nodes {
		if n != nil {
			n.noHandOver.Store(true) // nobody is left to take over
		}
	}
	for i := range c.Nodes {
		c.StopNode(i + 1)
	}
}

// Leader waits until a running node is leader and returns it.
func (c *LocalCluster) Leader(ctx context.Context) (*Node, error) {
	for {
		for _, n := range c.Nodes {
			select {
			case <-n.doneOrNil():
				continue // stopped (removed, or failed)
			default:
			}
			if n != nil && n.Status().Role == raft.RoleLeader {
				return n, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("node: no leader elected: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}
