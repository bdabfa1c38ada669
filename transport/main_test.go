package transport

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/flotilla-dev/flotilla/raft"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a Handler that remembers everything it is told.
type recorder struct {
	mu          sync.Mutex
	msgs        []raft.Message
	unreachable map[uint64]int
	snaps       []snapReport
	onReceive   func(raft.Message) // optional; called outside mu
}

func (r *recorder) Receive(m raft.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	f := r.onReceive
	r.mu.Unlock()
	if f != nil {
		f(m)
	}
}

func (r *recorder) ReportUnreachable(id uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.unreachable == nil {
		r.unreachable = make(map[uint64]int)
	}
	r.unreachable[id]++
}

func (r *recorder) ReportSnapshot(id uint64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snaps = append(r.snaps, snapReport{id, ok})
}

func (r *recorder) received() []raft.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]raft.Message(nil), r.msgs...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

func (r *recorder) unreachableCount(id uint64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unreachable[id]
}

func (r *recorder) snapReports() []snapReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]snapReport(nil), r.snaps...)
}

// logBuffer collects a transport's log for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) contains(s string) bool { return strings.Contains(b.String(), s) }

// node is one transport under test with its handler and log.
type node struct {
	*Transport
	h   *recorder
	log *logBuffer
}

// testConfig is a Config for node id on a free loopback port, with short
// timeouts so that failure paths run quickly.
func testConfig(id uint64) Config {
	return Config{
		ClusterID:        1,
		NodeID:           id,
		Listen:           "127.0.0.1:0",
		DialTimeout:      2 * time.Second,
		MinBackoff:       5 * time.Millisecond,
		MaxBackoff:       50 * time.Millisecond,
		HandshakeTimeout: 2 * time.Second,
	}
}

// start starts a transport with cfg and closes it when the test ends.
func start(t testing.TB, cfg Config) *node {
	t.Helper()
	n := &node{h: &recorder{}, log: &logBuffer{}}
	cfg.Logger = slog.New(slog.NewTextHandler(n.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tr, err := New(cfg, n.h)
	if err != nil {
		t.Fatalf("New(node %d): %v", cfg.NodeID, err)
	}
	n.Transport = tr
	t.Cleanup(func() {
		tr.Close()
		if t.Failed() {
			t.Logf("log of node %d:\n%s", cfg.NodeID, n.log)
		}
	})
	return n
}

// cluster starts n transports with IDs 1..n, each knowing all the others.
// mod, if not nil, adjusts each Config first.
func cluster(t testing.TB, n int, mod func(*Config)) []*node {
	t.Helper()
	nodes := make([]*node, n)
	for i := range nodes {
		cfg := testConfig(uint64(i + 1))
		if mod != nil {
			mod(&cfg)
		}
		nodes[i] = start(t, cfg)
	}
	for i, a := range nodes {
		for j, b := range nodes {
			if i != j {
				a.AddPeer(uint64(j+1), b.Addr())
			}
		}
	}
	return nodes
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// freeAddr returns a loopback address that nothing listens on (just now).
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// heartbeat is a small message from -> to numbered seq (in Index).
func heartbeat(from, to, seq uint64) raft.Message {
	return raft.Message{Type: raft.MsgHeartbeat, From: from, To: to, Term: 1, Index: seq, Commit: seq}
}
