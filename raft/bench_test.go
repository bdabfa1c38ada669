package raft_test

import (
	"math/rand/v2"
	"testing"

	"github.com/flotilla-dev/flotilla/raft"
)

// The benchmarks here measure the pure core alone: three Nodes in one
// goroutine, messages handed from Ready straight to Step, no disk and no
// network. They show what the protocol logic costs per proposal, the floor
// under any real deployment.

// benchCompactEvery is how many applied entries a benchmark host lets pile
// up before it compacts its log, as a real host would, so that the heap (and
// with it the garbage collector's work) stays the same size whatever b.N.
const benchCompactEvery = 4096

// benchHost plays the host of one Node: it "persists" by checking the Ready
// against what it stored before, and "applies" by counting.
type benchHost struct {
	n         *raft.Node
	hs        raft.HardState
	last      uint64 // last index on the imaginary disk
	applied   uint64
	compacted uint64
}

func (h *benchHost) handle(tb testing.TB, rd raft.Ready) {
	if s := rd.Snapshot; s != nil {
		h.last, h.applied = s.Meta.Index, s.Meta.Index
	}
	if len(rd.Entries) > 0 {
		first := rd.Entries[0].Index
		if first > h.last+1 {
			tb.Fatalf("node %d: Ready entries start at %d after stored index %d: a gap", h.n.ID(), first, h.last)
		}
		h.last = rd.Entries[len(rd.Entries)-1].Index
	}
	if !rd.HardState.IsEmpty() {
		h.hs = rd.HardState
	}
	for _, e := range rd.CommittedEntries {
		if e.Index != h.applied+1 {
			tb.Fatalf("node %d: applying %d after %d", h.n.ID(), e.Index, h.applied)
		}
		h.applied = e.Index
	}
}

// benchCluster is three Nodes wired to each other in memory.
type benchCluster struct {
	hosts []*benchHost
	// queue holds messages taken from Readies, to be stepped next round;
	// spare is the previous round's queue, kept to reuse its array.
	queue, spare []raft.Message
	// msgApps and appEntries count MsgApps carrying entries and those
	// entries, to report how much batching happened.
	msgApps, appEntries int
}

func newBenchCluster(tb testing.TB) *benchCluster {
	tb.Helper()
	c := &benchCluster{}
	peers := []uint64{1, 2, 3}
	for _, id := range peers {
		n, err := raft.New(raft.Config{ID: id, Peers: peers, Rand: rand.New(rand.NewPCG(1, id))})
		if err != nil {
			tb.Fatalf("raft.New(%d): %v", id, err)
		}
		c.hosts = append(c.hosts, &benchHost{n: n})
	}
	c.hosts[0].n.Campaign()
	c.settle(tb)
	if st := c.hosts[0].n.Status(); st.Role != raft.RoleLeader {
		tb.Fatalf("node 1 is %v after campaigning, want leader", st.Role)
	}
	c.msgApps, c.appEntries = 0, 0
	return c
}

func (c *benchCluster) leader() *raft.Node { return c.hosts[0].n }

// round hands every node's Ready to its host, then steps every message
// those Readies sent. It reports whether there was anything to do.
func (c *benchCluster) round(tb testing.TB) bool {
	busy := len(c.queue) > 0
	for _, h := range c.hosts {
		if !h.n.HasReady() {
			continue
		}
		busy = true
		rd := h.n.Ready()
		h.handle(tb, rd)
		c.queue = append(c.queue, rd.Messages...)
		h.n.Advance(rd)
		if h.applied-h.compacted >= benchCompactEvery {
			if _, err := h.n.Compact(h.applied, nil); err != nil {
				tb.Fatalf("node %d: compact to %d: %v", h.n.ID(), h.applied, err)
			}
			h.compacted = h.applied
		}
	}
	msgs := c.queue
	c.queue = c.spare[:0]
	for _, m := range msgs {
		if m.Type == raft.MsgApp && len(m.Entries) > 0 {
			c.msgApps++
			c.appEntries += len(m.Entries)
		}
		if err := c.hosts[m.To-1].n.Step(m); err != nil {
			tb.Fatalf("step %v: %v", m, err)
		}
	}
	clear(msgs) // drop references to entries so that compaction frees them
	c.spare = msgs[:0]
	return busy
}

// settle runs rounds until the cluster is quiet, then checks that every
// node applied the leader's whole log.
func (c *benchCluster) settle(tb testing.TB) {
	tb.Helper()
	for i := 0; c.round(tb); i++ {
		if i > 1_000_000 {
			tb.Fatal("cluster did not settle after a million rounds")
		}
	}
	last := c.leader().Status().LastIndex
	for _, h := range c.hosts {
		if h.applied != last || h.hs.Commit != last {
			tb.Fatalf("node %d settled with applied %d, commit %d; the leader's last index is %d",
				h.n.ID(), h.applied, h.hs.Commit, last)
		}
	}
}

// waitApplied runs rounds until the leader's host has applied index.
func (c *benchCluster) waitApplied(tb testing.TB, index uint64) {
	for c.hosts[0].applied < index {
		if !c.round(tb) {
			tb.Fatalf("cluster went quiet before the leader applied %d (applied %d)", index, c.hosts[0].applied)
		}
	}
}

func (c *benchCluster) reportBatching(b *testing.B) {
	if c.msgApps > 0 {
		b.ReportMetric(float64(c.appEntries)/float64(c.msgApps), "entries/msgapp")
	}
}

var benchPayload = []byte("flotilla-bench-1") // 16 bytes

// BenchmarkProposal3Nodes proposes one entry at a time and drives the
// three nodes until the leader has it committed: the latency path of one
// proposal through replication, acknowledgement and commit.
func BenchmarkProposal3Nodes(b *testing.B) {
	c := newBenchCluster(b)
	b.ReportAllocs()
	for b.Loop() {
		idx, _, err := c.leader().Propose(benchPayload)
		if err != nil {
			b.Fatal(err)
		}
		c.waitApplied(b, idx)
	}
	c.reportBatching(b)
	c.settle(b)
}

// BenchmarkProposal3NodesPipelined proposes b.N entries without waiting,
// then drives the cluster until the leader has committed them all. Once
// the leader's in-flight window to a follower fills, further entries ride
// together in one MsgApp: the throughput path.
func BenchmarkProposal3NodesPipelined(b *testing.B) {
	c := newBenchCluster(b)
	b.ReportAllocs()
	b.ResetTimer()
	var last uint64
	for range b.N {
		idx, _, err := c.leader().Propose(benchPayload)
		if err != nil {
			b.Fatal(err)
		}
		last = idx
	}
	c.waitApplied(b, last)
	b.StopTimer()
	c.reportBatching(b)
	c.settle(b)
}
