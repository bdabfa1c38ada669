package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/flotilla-dev/flotilla/node"
	"github.com/flotilla-dev/flotilla/raft"
	"github.com/flotilla-dev/flotilla/transport"
)

// Status is the JSON document /status serves. Field names are stable;
// new fields may be added.
type Status struct {
	// ID is this node's Raft ID; Addr its peer (transport) address.
	ID   uint64 `json:"id"`
	Addr string `json:"addr"`
	// Role is "follower", "pre-candidate", "candidate" or "leader".
	Role string `json:"role"`
	// Term is the current term; Vote the candidate voted for in it (0 for
	// none); Leader the known leader (0 for none).
	Term   uint64 `json:"term"`
	Vote   uint64 `json:"vote"`
	Leader uint64 `json:"leader"`
	// CommitIndex is the highest index known committed; AppliedIndex the
	// highest the core knows applied to the state machine.
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	// FirstIndex and LastIndex bound the log held in memory; entries
	// before FirstIndex are in the snapshot ending at SnapshotIndex.
	FirstIndex    uint64 `json:"first_index"`
	LastIndex     uint64 `json:"last_index"`
	SnapshotIndex uint64 `json:"snapshot_index"`
	// Voters are the IDs of the voting members.
	Voters []uint64 `json:"voters"`
	// Progress is the leader's view of every member, in ID order; empty
	// on other roles.
	Progress []Progress `json:"progress,omitempty"`
	// Stopped reports whether the node has stopped; Error is why, when it
	// stopped on a failure. A stopped node reports its last status.
	Stopped bool   `json:"stopped"`
	Error   string `json:"error,omitempty"`
	// Metrics summarizes the node's counters and latencies.
	Metrics MetricsSummary `json:"metrics"`
	// Peers describes the transport's traffic with each node, by ID.
	Peers map[uint64]PeerStatus `json:"peers"`
	// Service holds Config.Status's result; absent if it is not set.
	Service any `json:"service,omitempty"`
}

// Progress is the leader's replication state for one member (Raft §5.3).
type Progress struct {
	ID uint64 `json:"id"`
	// Match is the highest index known replicated on the member; Next
	// the next index the leader sends it.
	Match uint64 `json:"match"`
	Next  uint64 `json:"next"`
	// State is "probe", "replicate" or "snapshot".
	State string `json:"state"`
	// RecentActive reports whether the member was heard from within the
	// last election timeout.
	RecentActive bool `json:"recent_active"`
	// Inflight counts appends sent and not yet acknowledged.
	Inflight int `json:"inflight"`
}

// MetricsSummary is a digest of node.MetricsSnapshot; /metrics has the
// full histograms.
type MetricsSummary struct {
	// Proposals, Elections, LeaderChanges, Snapshots, BadMessages and
	// RecvDropped are the node's counters (see the package doc);
	// AppliedIndex is the last index applied to the state machine.
	Proposals     uint64 `json:"proposals"`
	AppliedIndex  uint64 `json:"applied_index"`
	Elections     uint64 `json:"elections"`
	LeaderChanges uint64 `json:"leader_changes"`
	Snapshots     uint64 `json:"snapshots"`
	BadMessages   uint64 `json:"bad_messages"`
	RecvDropped   uint64 `json:"recv_dropped"`
	// WALWrite, WALFsync, Apply and Proposal summarize the latency
	// histograms of the same names in the package doc.
	WALWrite Latency `json:"wal_write"`
	WALFsync Latency `json:"wal_fsync"`
	Apply    Latency `json:"apply"`
	Proposal Latency `json:"proposal"`
}

// Latency summarizes one latency histogram.
type Latency struct {
	// Count is the number of observations; MeanSeconds their mean, 0 when
	// there are none.
	Count       uint64  `json:"count"`
	MeanSeconds float64 `json:"mean_seconds"`
	// P50Seconds and P99Seconds are the upper bounds of the buckets
	// holding the median and the 99th percentile, 0 when there are no
	// observations. A quantile above the largest bound reports that bound.
	P50Seconds float64 `json:"p50_seconds"`
	P99Seconds float64 `json:"p99_seconds"`
}

// PeerStatus is the transport's view of one node.
type PeerStatus struct {
	// Addr is the configured address, empty for a node that sent us
	// messages but is not a configured peer.
	Addr string `json:"addr"`
	// Connected reports whether the outgoing connection is up.
	Connected bool `json:"connected"`
	// The counters mean what transport.Counters documents.
	MessagesSent     uint64 `json:"messages_sent"`
	MessagesReceived uint64 `json:"messages_received"`
	MessagesDropped  uint64 `json:"messages_dropped"`
	BytesSent        uint64 `json:"bytes_sent"`
	BytesReceived    uint64 `json:"bytes_received"`
	// LastError is the latest failure sending to the node and LastErrorAt
	// when it happened; both are absent if there was none.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// statusHandler serves /status.
type statusHandler struct {
	n       *node.Node
	service func() any
}

func (h statusHandler) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	b, err := json.MarshalIndent(h.status(), "", "  ")
	if err != nil {
		http.Error(w, fmt.Sprintf("admin: encoding status: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

// status gathers the document from the node.
func (h statusHandler) status() Status {
	st := h.n.Status()
	s := Status{
		ID: st.ID, Addr: h.n.Addr(), Role: st.Role.String(),
		Term: st.Term, Vote: st.Vote, Leader: st.Lead,
		CommitIndex: st.Commit, AppliedIndex: st.Applied,
		FirstIndex: st.FirstIndex, LastIndex: st.LastIndex, SnapshotIndex: st.SnapshotIndex,
		Voters:  append([]uint64{}, st.Voters...),
		Metrics: summarize(h.n.Metrics().Snapshot()),
		Peers:   peers(h.n.Transport().Stats()),
	}
	for _, p := range st.Progress {
		s.Progress = append(s.Progress, progress(p))
	}
	select {
	case <-h.n.Done():
		s.Stopped = true
		if err := h.n.Err(); err != nil {
			s.Error = err.Error()
		}
	default:
	}
	if h.service != nil {
		s.Service = h.service()
	}
	return s
}

func progress(p raft.ProgressStatus) Progress {
	return Progress{
		ID: p.ID, Match: p.Match, Next: p.Next, State: p.State.String(),
		RecentActive: p.RecentActive, Inflight: p.Inflight,
	}
}

func summarize(m node.MetricsSnapshot) MetricsSummary {
	return MetricsSummary{
		Proposals: m.Proposals, AppliedIndex: m.Applied, Elections: m.Elections,
		LeaderChanges: m.LeaderChanges, Snapshots: m.Snapshots,
		BadMessages: m.BadMessages, RecvDropped: m.RecvDropped,
		WALWrite: latency(m.WALWrite), WALFsync: latency(m.WALSync),
		Apply: latency(m.Apply), Proposal: latency(m.Proposal),
	}
}

func latency(h node.HistogramSnapshot) Latency {
	l := Latency{Count: h.Count}
	if h.Count == 0 {
		return l
	}
	l.MeanSeconds = h.Sum.Seconds() / float64(h.Count)
	l.P50Seconds = quantile(h, 0.5)
	l.P99Seconds = quantile(h, 0.99)
	return l
}

// quantile returns the upper bound, in seconds, of the bucket of h holding
// quantile q; the largest bound for the overflow bucket. h.Count must be
// positive.
func quantile(h node.HistogramSnapshot, q float64) float64 {
	bounds := node.HistogramBounds
	rank := uint64(q*float64(h.Count-1)) + 1 // 1-based rank of the quantile
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen >= rank && i < len(bounds) {
			return bounds[i].Seconds()
		}
	}
	return bounds[len(bounds)-1].Seconds()
}

func peers(s transport.Stats) map[uint64]PeerStatus {
	out := make(map[uint64]PeerStatus, len(s.Peers))
	for id, p := range s.Peers {
		out[id] = PeerStatus{
			Addr: p.Addr, Connected: p.Connected,
			MessagesSent: p.MsgsSent, MessagesReceived: p.MsgsReceived, MessagesDropped: p.Dropped,
			BytesSent: p.BytesSent, BytesReceived: p.BytesReceived,
			LastError: p.LastError, LastErrorAt: p.LastErrorAt,
		}
	}
	return out
}
