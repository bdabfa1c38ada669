package node

import (
	"sync"
	"sync/atomic"
	"time"
)

// Metrics are a node's counters and latency histograms. They are safe for
// concurrent use; the admin HTTP server exports them.
type Metrics struct {
	proposals, elections, leaderChanges atomic.Uint64
	snapshots, badMessages, recvDropped atomic.Uint64
	applied                             atomic.Uint64

	walWrite, walSync, apply, proposalLatency histogram
}

func newMetrics() *Metrics { return &Metrics{} }

func (m *Metrics) observeSync(d time.Duration) { m.walSync.observe(d) }

// Snapshot is a point-in-time copy of the metrics.
type MetricsSnapshot struct {
	Proposals, Elections, LeaderChanges uint64
	Snapshots, BadMessages, RecvDropped uint64
	Applied                             uint64
	// Latency histograms: WAL writes (including fsync), fsyncs alone, state
	// machine applies, and proposals from Propose to applied.
	WALWrite, WALSync, Apply, Proposal HistogramSnapshot
}

// Snapshot copies the current values.
func (m *Metrics) Snapshot() MetricsSnapshot {
	return MetricsSnapshot{
		Proposals: m.proposals.Load(), Elections: m.elections.Load(), LeaderChanges: m.leaderChanges.Load(),
		Snapshots: m.snapshots.Load(), BadMessages: m.badMessages.Load(), RecvDropped: m.recvDropped.Load(),
		Applied:  m.applied.Load(),
		WALWrite: m.walWrite.snapshot(), WALSync: m.walSync.snapshot(),
		Apply: m.apply.snapshot(), Proposal: m.proposalLatency.snapshot(),
	}
}

// HistogramBounds are the upper bounds of the latency buckets, doubling
// from 16 µs to about 17 s.
var HistogramBounds = func() []time.Duration {
	var b []time.Duration
	for d := 16 * time.Microsecond; d < 20*time.Second; d *= 2 {
		b = append(b, d)
	}
	return b
}()

type histogram struct {
	mu     sync.Mutex
	counts [32]uint64 // len(HistogramBounds)+1 used; the last is +Inf
	sum    time.Duration
	n      uint64
}

func (h *histogram) observe(d time.Duration) {
	i := 0
	for i < len(HistogramBounds) && d > HistogramBounds[i] {
		i++
	}
	h.mu.Lock()
	h.counts[i]++
	h.sum += d
	h.n++
	h.mu.Unlock()
}

// HistogramSnapshot is a copy of a latency histogram: Counts[i] counts
// observations at most HistogramBounds[i]; the last count is above them all.
type HistogramSnapshot struct {
	Counts []uint64
	Sum    time.Duration
	Count  uint64
}

func (h *histogram) snapshot() HistogramSnapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	return HistogramSnapshot{Counts: append([]uint64(nil), h.counts[:len(HistogramBounds)+1]...), Sum: h.sum, Count: h.n}
}
