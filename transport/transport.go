package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flotilla-dev/flotilla/raft"
)

// Handler receives what the transport has to tell its node. Its methods are
// called from the transport's goroutines, possibly several at once, and
// never after Close has returned. They must not block for long and must not
// call Close.
type Handler interface {
	// Receive hands over a message that arrived for this node. Messages
	// from one peer arrive in the order that peer sent them, except that
	// snapshots travel on their own connection. The message's slices
	// belong to the receiver from then on.
	Receive(m raft.Message)
	// ReportUnreachable tells that a send to node id failed: its queue was
	// full, the destination is unknown, a dial failed or the connection
	// broke. A Raft leader answers by probing the follower again.
	ReportUnreachable(id uint64)
	// ReportSnapshot tells how a MsgSnap to node id ended: ok once the last
	// chunk was written and flushed, not ok if it was dropped or the
	// stream broke.
	ReportSnapshot(id uint64, ok bool)
}

// Defaults for the zero values of Config's fields; each field's comment
// says what it bounds.
const (
	DefaultMaxFrameBytes    = 4 << 20                // 4 MiB per frame payload
	DefaultMaxSnapshotBytes = 1 << 30                // 1 GiB of snapshot data
	DefaultQueueLen         = 4096                   // messages queued per peer
	DefaultDialTimeout      = 5 * time.Second        // dial plus handshake
	DefaultMinBackoff       = 100 * time.Millisecond // first redial wait
	DefaultMaxBackoff       = 5 * time.Second        // longest redial wait
	DefaultHandshakeTimeout = 5 * time.Second        // for an inbound hello
	DefaultWriteTimeout     = 10 * time.Second       // per write or flush
	DefaultMaxInbound       = 256                    // open inbound connections
)

// minFrameBytes is the smallest frame limit accepted: room for an error
// frame's reason and a useful snapshot chunk.
const minFrameBytes = 1024

// maxFrameLimit keeps frame lengths within the u32 length prefix.
const maxFrameLimit = 1 << 30

// snapQueueLen is how many MsgSnap may wait per peer; more are dropped and
// reported failed. Raft sends one snapshot at a time per follower.
const snapQueueLen = 4

// Config configures a Transport. Zero durations and sizes take the defaults
// above.
type Config struct {
	// ClusterID must be the same on every node of the cluster; a
	// connection from another cluster is refused.
	ClusterID uint64
	// NodeID is this node's Raft ID; not zero.
	NodeID uint64
	// Listen is the TCP address to accept peers on, e.g. "127.0.0.1:0".
	Listen string
	// Peers maps peer IDs to their addresses. An entry for NodeID itself is
	// ignored. The map is copied; change peers later with AddPeer and
	// RemovePeer.
	Peers map[uint64]string
	// MaxFrameBytes bounds the payload of one frame, in both directions:
	// this node refuses longer frames, and sends peers no more than they
	// announce. A message that does not fit is dropped; snapshot data is
	// chunked to fit. Default 4 MiB, at least 1 KiB, at most 1 GiB.
	MaxFrameBytes int
	// MaxSnapshotBytes bounds the data of one received snapshot. Default
	// 1 GiB.
	MaxSnapshotBytes int64
	// QueueLen is the per-peer outgoing queue length, in messages. Send
	// drops a message for a full queue and counts it. While a peer is
	// unreachable its queue keeps up to QueueLen messages, sent in order
	// once it is back. Default 4096.
	QueueLen int
	// Logger receives the transport's log; nil discards it.
	Logger *slog.Logger
	// DialTimeout bounds one connection attempt, the dial and the
	// handshake together. Default 5 s.
	DialTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between connection
	// attempts to a peer: it doubles from MinBackoff up to MaxBackoff,
	// with jitter of up to half of it. Defaults 100 ms and 5 s.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// HandshakeTimeout bounds how long an inbound connection may take to
	// send its hello. Default 5 s.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds each write to a peer; a peer that takes longer
	// to read is treated as broken. It also bounds how long a receiver
	// waits for the next frame of a snapshot stream. Default 10 s.
	WriteTimeout time.Duration
	// MaxInbound bounds the number of open inbound connections; more are
	// closed as soon as accepted. Default 256.
	MaxInbound int

	// dial replaces net.Dialer.DialContext in tests.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// beforeChunk, if set, runs before each snapshot chunk is written.
	beforeChunk func()
}

func (c *Config) setDefaults() error {
	if c.NodeID == 0 {
		return errors.New("transport: Config.NodeID is 0; give every node a non-zero ID")
	}
	if c.Listen == "" {
		return errors.New("transport: Config.Listen is empty; give an address such as 127.0.0.1:7000")
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if c.MaxFrameBytes < minFrameBytes || c.MaxFrameBytes > maxFrameLimit {
		return fmt.Errorf("transport: Config.MaxFrameBytes %d is outside [%d, %d]", c.MaxFrameBytes, minFrameBytes, maxFrameLimit)
	}
	setDefault(&c.MaxSnapshotBytes, DefaultMaxSnapshotBytes)
	setDefault(&c.QueueLen, DefaultQueueLen)
	setDefault(&c.DialTimeout, DefaultDialTimeout)
	setDefault(&c.MinBackoff, DefaultMinBackoff)
	setDefault(&c.MaxBackoff, DefaultMaxBackoff)
	setDefault(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	setDefault(&c.WriteTimeout, DefaultWriteTimeout)
	setDefault(&c.MaxInbound, DefaultMaxInbound)
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	for id := range c.Peers {
		if id == 0 {
			return errors.New("transport: Config.Peers has node ID 0; peer IDs must be non-zero")
		}
	}
	return nil
}

// setDefault replaces a non-positive *v with def.
func setDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Transport carries Raft messages between this node and its peers over TCP.
// It keeps one long-lived outgoing connection per peer, written by one
// goroutine that drains the peer's queue and batches many messages per write,
// and opens a separate connection per snapshot. Inbound connections are
// served by a goroutine each. All its methods are safe for concurrent use.
type Transport struct {
	cfg Config
	h   Handler
	log *slog.Logger
	ln  net.Listener
	rep reporter

	// ctx is cancelled by Close or by the parent context; every goroutine
	// returns once it is done.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts the goroutines. It holds one extra count from New until
	// Close, so that AddPeer (which checks closed under mu) never adds to
	// a zero counter while Close waits.
	wg        sync.WaitGroup
	closeOnce sync.Once

	mu     sync.RWMutex
	closed bool             // set by Close; guarded by mu
	peers  map[uint64]*peer // guarded by mu

	// faults, if set, drops messages for fault injection (faults.go).
	faults atomic.Pointer[Faults]

	statsMu        sync.Mutex
	stats          map[uint64]*peerCounters // guarded by statsMu
	overflow       peerCounters             // for IDs beyond maxStatsIDs
	droppedUnknown atomic.Uint64

	connMu           sync.Mutex
	conns            map[net.Conn]struct{} // open inbound connections; guarded by connMu
	inLastErr        string                // guarded by connMu
	inAccepted       atomic.Uint64
	inRefused        atomic.Uint64
	inProtocolErrors atomic.Uint64
}

// New creates a Transport, binds its listener (so that Addr is known when it
// returns), starts accepting peers and starts connecting to cfg.Peers.
func New(cfg Config, h Handler) (*Transport, error) {
	return NewWithContext(context.Background(), cfg, h)
}

// NewWithContext is New with a parent context: cancelling ctx shuts the
// transport down as Close does. Call Close anyway to wait for its goroutines.
func NewWithContext(ctx context.Context, cfg Config, h Handler) (*Transport, error) {
	if h == nil {
		return nil, errors.New("transport: nil Handler")
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	lc := net.ListenConfig{}
	ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("transport: listening on %s: %w", cfg.Listen, err)
	}
	peers := cfg.Peers
	cfg.Peers = nil
	t := &Transport{
		cfg:   cfg,
		h:     h,
		log:   cfg.Logger.With("node", cfg.NodeID),
		ln:    ln,
		peers: make(map[uint64]*peer),
		stats: make(map[uint64]*peerCounters),
		conns: make(map[net.Conn]struct{}),
	}
	t.ctx, t.cancel = context.WithCancel(ctx)
	t.rep.init()
	t.wg.Add(3) // the lifetime count, the accept loop, the reporter
	context.AfterFunc(t.ctx, func() { ln.Close() })
	go t.acceptLoop()
	go t.rep.run(t.ctx, h, &t.wg)
	for id, addr := range peers {
		t.AddPeer(id, addr)
	}
	t.log.Info("transport listening", "addr", t.Addr())
	return t, nil
}

// Addr returns the address the transport listens on, with the actual port
// when Config.Listen asked for port 0.
func (t *Transport) Addr() string { return t.ln.Addr().String() }

// Send queues msgs for their destinations (m.To) and returns at once; it
// never blocks on the network. A message for an unknown peer or a full queue
// is dropped, counted in Stats and reported with ReportUnreachable; a MsgSnap
// so dropped is also reported with ReportSnapshot(to, false).
//
// Send encodes every message except MsgSnap before it returns, so the caller
// may reuse the entries afterwards. A MsgSnap's Snapshot.Data is streamed
// later from the caller's slice, which must stay unmodified until
// ReportSnapshot.
func (t *Transport) Send(msgs []raft.Message) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed || t.ctx.Err() != nil {
		t.droppedUnknown.Add(uint64(len(msgs)))
		return
	}
	for i := range msgs {
		m := &msgs[i]
		if t.dropOutbound(m) {
			continue
		}
		p := t.peers[m.To]
		if p == nil {
			t.droppedUnknown.Add(1)
			t.log.Debug("dropping message for unknown peer", "to", m.To, "type", m.Type)
			t.rep.unreachable(m.To)
			if m.Type == raft.MsgSnap {
				t.rep.snapshot(m.To, false)
			}
			continue
		}
		p.enqueue(m)
	}
}

// AddPeer adds or updates the address of peer id and starts connecting to
// it. Adding a peer with its current address does nothing; a new address
// replaces the old connection. Adding this node's own ID is ignored.
func (t *Transport) AddPeer(id uint64, addr string) {
	if id == 0 || id == t.cfg.NodeID {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.ctx.Err() != nil {
		return
	}
	if old := t.peers[id]; old != nil {
		if old.addr == addr {
			return
		}
		old.stop()
	}
	p := newPeer(t, id, addr)
	t.peers[id] = p
	t.wg.Add(2)
	go p.runMessages()
	go p.runSnapshots()
}

// RemovePeer stops sending to peer id and closes its connections. It does
// not wait for the peer's goroutines (Close does). Messages still queued for
// it are dropped, and queued snapshots reported as failed.
func (t *Transport) RemovePeer(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.peers[id]; p != nil {
		p.stop()
		delete(t.peers, id)
	}
}

// Close stops every goroutine, closes the listener and all connections, and
// waits for them. Messages still queued are dropped. No Handler method is
// called after Close returns. Close is idempotent and always returns nil.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		t.mu.Unlock()
		t.cancel()
		t.wg.Done() // the lifetime count
		t.wg.Wait()
		t.log.Info("transport closed")
	})
	return nil
}

// wait sleeps for d or until ctx is done, and reports whether ctx is still
// live.
func wait(ctx context.Context, d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// closeOnDone closes c once ctx is done, unblocking any read or write on it.
// The returned function cancels that, as context.AfterFunc's does.
func closeOnDone(ctx context.Context, c net.Conn) (stop func() bool) {
	return context.AfterFunc(ctx, func() { c.Close() })
}
