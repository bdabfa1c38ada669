package transport

import (
	"sync"
	"sync/atomic"
	"time"
)

// Counters are the traffic counts of one peer, or of all peers summed.
// Bytes count whole frames, headers included.
type Counters struct {
	// MsgsSent and BytesSent count messages written and flushed to a
	// connection. A message counted here may still be lost if the
	// connection breaks before the peer reads it.
	MsgsSent  uint64
	BytesSent uint64
	// MsgsReceived and BytesReceived count messages handed to
	// Handler.Receive; a snapshot counts once, with all its chunks' bytes.
	MsgsReceived  uint64
	BytesReceived uint64
	// Dropped counts messages given to Send that were never written: the
	// destination was unknown, its queue was full, the message was too
	// large for a frame, or it was buffered when the connection broke.
	Dropped uint64
	// Reconnects counts connections established after the first one to a
	// peer.
	Reconnects uint64
	// DialFailures counts failed attempts to connect and handshake.
	DialFailures uint64
	// SnapshotsSent counts snapshot streams written and flushed in full;
	// SnapshotsFailed those that broke or were dropped; SnapshotsReceived
	// those reassembled and delivered.
	SnapshotsSent     uint64
	SnapshotsFailed   uint64
	SnapshotsReceived uint64
}

func (c *Counters) add(o Counters) {
	c.MsgsSent += o.MsgsSent
	c.BytesSent += o.BytesSent
	c.MsgsReceived += o.MsgsReceived
	c.BytesReceived += o.BytesReceived
	c.Dropped += o.Dropped
	c.Reconnects += o.Reconnects
	c.DialFailures += o.DialFailures
	c.SnapshotsSent += o.SnapshotsSent
	c.SnapshotsFailed += o.SnapshotsFailed
	c.SnapshotsReceived += o.SnapshotsReceived
}

// PeerStats describes the traffic with one node.
type PeerStats struct {
	Counters
	// Addr is the peer's configured address; empty for a node that is
	// not (or no longer) a configured peer but has sent us messages.
	Addr string
	// Connected reports whether the outgoing message connection is up.
	Connected bool
	// LastError is the most recent failure sending to the peer (a dial
	// error, a refusal with the peer's reason, a broken connection), or
	// empty if there was none; LastErrorAt is when it happened.
	LastError   string
	LastErrorAt time.Time
}

// InboundStats describes connections accepted by the listener.
type InboundStats struct {
	// Accepted counts connections that completed the handshake.
	Accepted uint64
	// Refused counts connections closed during the handshake: bad magic,
	// a version, cluster or node mismatch, a timeout, or too many
	// connections.
	Refused uint64
	// ProtocolErrors counts handshaken connections closed because of
	// malformed or oversize frames.
	ProtocolErrors uint64
	// Open is the number of inbound connections open now.
	Open int
	// LastError is the most recent refusal or protocol error, with the
	// remote address.
	LastError string
}

// Stats is a snapshot of a Transport's counters.
type Stats struct {
	// Peers holds every configured peer and every node we received from.
	Peers map[uint64]PeerStats
	// Total sums Peers, plus the messages dropped for unknown destinations
	// or after Close.
	Total Counters
	// Inbound describes accepted connections.
	Inbound InboundStats
}

// peerCounters are the live counters behind a PeerStats. They belong to a
// node ID and outlive RemovePeer, so that a peer removed and added again
// keeps counting.
type peerCounters struct {
	msgsSent, bytesSent, msgsRecv, bytesRecv atomic.Uint64
	dropped, reconnects, dialFailures        atomic.Uint64
	snapsSent, snapsFailed, snapsRecv        atomic.Uint64

	mu        sync.Mutex
	lastErr   string
	lastErrAt time.Time
}

// setError records err and reports whether it differs from the last one.
func (c *peerCounters) setError(err error) (changed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed = c.lastErr != err.Error()
	c.lastErr, c.lastErrAt = err.Error(), time.Now()
	return changed
}

func (c *peerCounters) counters() Counters {
	return Counters{
		MsgsSent:          c.msgsSent.Load(),
		BytesSent:         c.bytesSent.Load(),
		MsgsReceived:      c.msgsRecv.Load(),
		BytesReceived:     c.bytesRecv.Load(),
		Dropped:           c.dropped.Load(),
		Reconnects:        c.reconnects.Load(),
		DialFailures:      c.dialFailures.Load(),
		SnapshotsSent:     c.snapsSent.Load(),
		SnapshotsFailed:   c.snapsFailed.Load(),
		SnapshotsReceived: c.snapsRecv.Load(),
	}
}

func (c *peerCounters) stats() PeerStats {
	s := PeerStats{Counters: c.counters()}
	c.mu.Lock()
	s.LastError, s.LastErrorAt = c.lastErr, c.lastErrAt
	c.mu.Unlock()
	return s
}

// maxStatsIDs bounds how many node IDs get their own counters, so that a
// stream of connections claiming fresh sender IDs cannot grow the map
// without bound. Traffic from further IDs is counted in the totals only.
const maxStatsIDs = 4096

// counters returns the counters of node id, creating them if needed.
func (t *Transport) counters(id uint64) *peerCounters {
	t.statsMu.Lock()
	defer t.statsMu.Unlock()
	c := t.stats[id]
	if c == nil {
		if len(t.stats) >= maxStatsIDs {
			return &t.overflow
		}
		c = &peerCounters{}
		t.stats[id] = c
	}
	return c
}

// Stats returns a snapshot of the transport's counters.
func (t *Transport) Stats() Stats {
	t.mu.RLock()
	current := make(map[uint64]*peer, len(t.peers))
	for id, p := range t.peers {
		current[id] = p
	}
	t.mu.RUnlock()

	s := Stats{Peers: make(map[uint64]PeerStats)}
	t.statsMu.Lock()
	for id, c := range t.stats {
		ps := c.stats()
		if p := current[id]; p != nil {
			ps.Addr, ps.Connected = p.addr, p.connected.Load()
		}
		s.Peers[id] = ps
		s.Total.add(ps.Counters)
	}
	t.statsMu.Unlock()
	s.Total.add(t.overflow.counters())
	s.Total.Dropped += t.droppedUnknown.Load()

	s.Inbound = InboundStats{
		Accepted:       t.inAccepted.Load(),
		Refused:        t.inRefused.Load(),
		ProtocolErrors: t.inProtocolErrors.Load(),
	}
	t.connMu.Lock()
	s.Inbound.Open = len(t.conns)
	s.Inbound.LastError = t.inLastErr
	t.connMu.Unlock()
	return s
}
