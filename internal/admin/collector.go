package admin

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flotilla-dev/flotilla/node"
	"github.com/flotilla-dev/flotilla/raft"
	"github.com/flotilla-dev/flotilla/transport"
)

// nodeMetric is one metric read from a node.MetricsSnapshot.
type nodeMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(node.MetricsSnapshot) uint64
}

// statusMetric is one gauge read from a raft.Status.
type statusMetric struct {
	desc  *prometheus.Desc
	value func(raft.Status) uint64
}

// histMetric is one latency histogram read from a node.MetricsSnapshot.
type histMetric struct {
	desc  *prometheus.Desc
	value func(node.MetricsSnapshot) node.HistogramSnapshot
}

// trMetric is one transport counter, exported per peer and in total.
type trMetric struct {
	peer, total *prometheus.Desc
	value       func(transport.Counters) uint64
}

// inboundMetric is one metric read from transport.InboundStats.
type inboundMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(transport.InboundStats) uint64
}

// roles are the values of the role label, in raft.Role order.
var roles = []raft.Role{raft.RoleFollower, raft.RolePreCandidate, raft.RoleCandidate, raft.RoleLeader}

// collector is a prometheus.Collector that reads a node when scraped. It
// holds no state besides its descriptors, so concurrent scrapes are safe.
type collector struct {
	n         *node.Node
	nodes     []nodeMetric
	status    []statusMetric
	hists     []histMetric
	transport []trMetric
	inbound   []inboundMetric

	role, connected                  *prometheus.Desc
	peerMatch, peerNext, peerInfl    *prometheus.Desc
	peerActive                       *prometheus.Desc
	isLeader, leaderID, nodeID, vote *prometheus.Desc
}

func newCollector(ns string, n *node.Node) *collector {
	desc := func(subsystem, name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(ns, subsystem, name), help, labels, nil)
	}
	c := &collector{n: n}
	counter, gauge := prometheus.CounterValue, prometheus.GaugeValue
	c.nodes = []nodeMetric{
		{desc("raft", "proposals_total", "Proposals the Raft core accepted on this node while it was leader."), counter,
			func(m node.MetricsSnapshot) uint64 { return m.Proposals }},
		{desc("raft", "applied_entries_total", "Index of the last log entry applied to the state machine; it only grows, so its rate is entries applied per second."), counter,
			func(m node.MetricsSnapshot) uint64 { return m.Applied }},
		{desc("raft", "elections_total", "Elections this node won: times it became leader."), counter,
			func(m node.MetricsSnapshot) uint64 { return m.Elections }},
		{desc("raft", "leader_changes_total", "Times the leader known to this node changed, including to no leader."), counter,
			func(m node.MetricsSnapshot) uint64 { return m.LeaderChanges }},
		{desc("raft", "snapshots_total", "Snapshots this node took of its state machine to compact its log."), counter,
			func(m node.MetricsSnapshot) uint64 { return m.Snapshots }},
		{desc("raft", "bad_messages_total", "Peer messages the Raft core rejected as malformed."), counter,
			func(m node.MetricsSnapshot) uint64 { return m.BadMessages }},
		{desc("raft", "recv_dropped_total", "Peer messages dropped because the node's inbox was full."), counter,
			func(m node.MetricsSnapshot) uint64 { return m.RecvDropped }},
	}
	c.status = []statusMetric{
		{desc("raft", "term", "Current Raft term of this node."), func(s raft.Status) uint64 { return s.Term }},
		{desc("raft", "commit_index", "Highest log index this node knows to be committed."), func(s raft.Status) uint64 { return s.Commit }},
		{desc("raft", "applied_index", "Highest log index the Raft core knows to be applied to the state machine."), func(s raft.Status) uint64 { return s.Applied }},
		{desc("raft", "first_index", "First log index held in memory; earlier entries are in the snapshot."), func(s raft.Status) uint64 { return s.FirstIndex }},
		{desc("raft", "last_index", "Last index in this node's log."), func(s raft.Status) uint64 { return s.LastIndex }},
		{desc("raft", "snapshot_index", "Last log index covered by this node's latest snapshot."), func(s raft.Status) uint64 { return s.SnapshotIndex }},
		{desc("raft", "voters", "Number of voting members in this node's configuration."), func(s raft.Status) uint64 { return uint64(len(s.Voters)) }},
	}
	c.nodeID = desc("raft", "node_id", "This node's Raft ID.")
	c.vote = desc("raft", "vote", "ID of the candidate this node voted for in the current term, 0 if none.")
	c.isLeader = desc("raft", "is_leader", "1 if this node is the Raft leader, 0 otherwise.")
	c.leaderID = desc("raft", "leader_id", "ID of the leader known to this node, 0 if none.")
	c.role = desc("raft", "role", "1 for this node's current Raft role, 0 for the other roles.", "role")
	c.peerMatch = desc("raft", "peer_match_index", "On the leader: highest log index known to be replicated on the peer.", "peer")
	c.peerNext = desc("raft", "peer_next_index", "On the leader: next log index to send to the peer.", "peer")
	c.peerInfl = desc("raft", "peer_inflight", "On the leader: append messages sent to the peer and not yet acknowledged.", "peer")
	c.peerActive = desc("raft", "peer_recent_active", "On the leader: 1 if the peer was heard from within the last election timeout, 0 otherwise.", "peer")
	c.hists = []histMetric{
		{desc("wal", "write_seconds", "Latency of write-ahead log writes, fsync included."),
			func(m node.MetricsSnapshot) node.HistogramSnapshot { return m.WALWrite }},
		{desc("wal", "fsync_seconds", "Latency of write-ahead log fsyncs alone."),
			func(m node.MetricsSnapshot) node.HistogramSnapshot { return m.WALSync }},
		{desc("", "apply_seconds", "Latency of state machine Apply calls, one per batch of committed commands."),
			func(m node.MetricsSnapshot) node.HistogramSnapshot { return m.Apply }},
		{desc("", "proposal_seconds", "Latency of proposals from Propose to applied on this node."),
			func(m node.MetricsSnapshot) node.HistogramSnapshot { return m.Proposal }},
	}
	tr := func(name, help string, value func(transport.Counters) uint64) trMetric {
		return trMetric{
			peer:  desc("transport", "peer_"+name, help+" To or from one peer.", "peer"),
			total: desc("transport", name, help+" Summed over all peers."),
			value: value,
		}
	}
	c.transport = []trMetric{
		tr("messages_sent_total", "Messages written and flushed to a connection.", func(s transport.Counters) uint64 { return s.MsgsSent }),
		tr("bytes_sent_total", "Bytes of frames written and flushed to a connection, headers included.", func(s transport.Counters) uint64 { return s.BytesSent }),
		tr("messages_received_total", "Messages received and handed to the node.", func(s transport.Counters) uint64 { return s.MsgsReceived }),
		tr("bytes_received_total", "Bytes of frames received, headers included.", func(s transport.Counters) uint64 { return s.BytesReceived }),
		tr("messages_dropped_total", "Messages given to the transport that were never written: unknown destination, full queue, oversize, or buffered when the connection broke.", func(s transport.Counters) uint64 { return s.Dropped }),
		tr("reconnects_total", "Outgoing connections established after the first one.", func(s transport.Counters) uint64 { return s.Reconnects }),
		tr("dial_failures_total", "Failed attempts to connect and handshake.", func(s transport.Counters) uint64 { return s.DialFailures }),
		tr("snapshots_sent_total", "Snapshot streams written and flushed in full.", func(s transport.Counters) uint64 { return s.SnapshotsSent }),
		tr("snapshots_failed_total", "Snapshot streams that broke or were dropped.", func(s transport.Counters) uint64 { return s.SnapshotsFailed }),
		tr("snapshots_received_total", "Snapshot streams received, reassembled and delivered.", func(s transport.Counters) uint64 { return s.SnapshotsReceived }),
	}
	c.connected = desc("transport", "peer_connected", "1 if the outgoing message connection to the peer is up, 0 otherwise.", "peer")
	c.inbound = []inboundMetric{
		{desc("transport", "inbound_accepted_total", "Inbound connections that completed the handshake."), counter,
			func(s transport.InboundStats) uint64 { return s.Accepted }},
		{desc("transport", "inbound_refused_total", "Inbound connections closed during the handshake: bad magic, version, cluster or node mismatch, timeout, or too many connections."), counter,
			func(s transport.InboundStats) uint64 { return s.Refused }},
		{desc("transport", "inbound_protocol_errors_total", "Handshaken inbound connections closed for malformed or oversize frames."), counter,
			func(s transport.InboundStats) uint64 { return s.ProtocolErrors }},
		{desc("transport", "inbound_connections", "Inbound connections open now."), gauge,
			func(s transport.InboundStats) uint64 { return uint64(s.Open) }},
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.nodes {
		ch <- m.desc
	}
	for _, m := range c.status {
		ch <- m.desc
	}
	for _, m := range c.hists {
		ch <- m.desc
	}
	for _, m := range c.transport {
		ch <- m.peer
		ch <- m.total
	}
	for _, m := range c.inbound {
		ch <- m.desc
	}
	for _, d := range []*prometheus.Desc{
		c.role, c.connected, c.peerMatch, c.peerNext, c.peerInfl, c.peerActive,
		c.isLeader, c.leaderID, c.nodeID, c.vote,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it reads the node's metrics,
// Raft status and transport statistics once per scrape.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ms := c.n.Metrics().Snapshot()
	for _, m := range c.nodes {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, float64(m.value(ms)))
	}
	for _, m := range c.hists {
		h := m.value(ms)
		ch <- prometheus.MustNewConstHistogram(m.desc, h.Count, h.Sum.Seconds(), cumulativeBuckets(h))
	}
	c.collectStatus(ch, c.n.Status())
	c.collectTransport(ch, c.n.Transport().Stats())
}

func (c *collector) collectStatus(ch chan<- prometheus.Metric, st raft.Status) {
	gauge := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	for _, m := range c.status {
		gauge(m.desc, m.value(st))
	}
	gauge(c.nodeID, st.ID)
	gauge(c.vote, st.Vote)
	gauge(c.isLeader, b2u(st.Role == raft.RoleLeader))
	gauge(c.leaderID, st.Lead)
	for _, r := range roles {
		gauge(c.role, b2u(st.Role == r), r.String())
	}
	for _, p := range st.Progress {
		id := strconv.FormatUint(p.ID, 10)
		gauge(c.peerMatch, p.Match, id)
		gauge(c.peerNext, p.Next, id)
		gauge(c.peerInfl, uint64(p.Inflight), id)
		gauge(c.peerActive, b2u(p.RecentActive), id)
	}
}

func (c *collector) collectTransport(ch chan<- prometheus.Metric, s transport.Stats) {
	for id, p := range s.Peers {
		label := strconv.FormatUint(id, 10)
		for _, m := range c.transport {
			ch <- prometheus.MustNewConstMetric(m.peer, prometheus.CounterValue, float64(m.value(p.Counters)), label)
		}
		ch <- prometheus.MustNewConstMetric(c.connected, prometheus.GaugeValue, float64(b2u(p.Connected)), label)
	}
	for _, m := range c.transport {
		ch <- prometheus.MustNewConstMetric(m.total, prometheus.CounterValue, float64(m.value(s.Total)))
	}
	for _, m := range c.inbound {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, float64(m.value(s.Inbound)))
	}
}

// cumulativeBuckets converts h's per-bucket counts into Prometheus's
// cumulative upper-bound form, in seconds. The overflow bucket (above the
// last bound) is implied by the histogram's total count.
func cumulativeBuckets(h node.HistogramSnapshot) map[float64]uint64 {
	out := make(map[float64]uint64, len(node.HistogramBounds))
	var sum uint64
	for i, b := range node.HistogramBounds {
		if i < len(h.Counts) {
			sum += h.Counts[i]
		}
		out[b.Seconds()] = sum
	}
	return out
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
