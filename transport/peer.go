package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"

	"github.com/flotilla-dev/flotilla/raft"
)

// writeBufSize is the buffer between a peer's queue and its connection: the
// writer fills it with as many queued frames as fit before a write syscall.
const writeBufSize = 64 << 10

// peer is the sending side towards one node: a queue of encoded frames, the
// goroutine that keeps a connection open and drains the queue into it, and
// the goroutine that streams snapshots.
type peer struct {
	t    *Transport
	id   uint64
	addr string
	log  *slog.Logger
	c    *peerCounters

	// ctx is cancelled by RemovePeer, a replacing AddPeer or Close.
	ctx    context.Context
	cancel context.CancelFunc

	// q holds encoded frameMsg frames in send order. It is never closed:
	// Send may race with stop, and a frame left in it is garbage.
	q chan []byte
	// snapq holds MsgSnap messages waiting for the snapshot goroutine.
	snapq chan raft.Message
	// connected is set while the message connection is up.
	connected atomic.Bool
}

func newPeer(t *Transport, id uint64, addr string) *peer {
	ctx, cancel := context.WithCancel(t.ctx)
	return &peer{
		t:      t,
		id:     id,
		addr:   addr,
		log:    t.log.With("peer", id, "addr", addr),
		c:      t.counters(id),
		ctx:    ctx,
		cancel: cancel,
		q:      make(chan []byte, t.cfg.QueueLen),
		snapq:  make(chan raft.Message, snapQueueLen),
	}
}

// stop makes the peer's goroutines return and close their connections.
func (p *peer) stop() { p.cancel() }

// enqueue queues m without blocking, or drops and reports it.
func (p *peer) enqueue(m *raft.Message) {
	if m.Type == raft.MsgSnap {
		if m.Snapshot == nil {
			p.c.dropped.Add(1)
			p.c.snapsFailed.Add(1)
			p.c.setError(errors.New("transport: dropped a MsgSnap without a Snapshot"))
			p.t.rep.snapshot(p.id, false)
			return
		}
		select {
		case p.snapq <- *m:
		default:
			p.c.dropped.Add(1)
			p.c.snapsFailed.Add(1)
			p.log.Debug("dropping snapshot: snapshot queue full")
			p.t.rep.unreachable(p.id)
			p.t.rep.snapshot(p.id, false)
		}
		return
	}
	f, err := messageFrame(m, p.t.cfg.MaxFrameBytes)
	if err != nil {
		p.c.dropped.Add(1)
		p.c.setError(err)
		p.log.Warn("dropping message", "err", err)
		p.t.rep.unreachable(p.id)
		return
	}
	select {
	case p.q <- f:
	default:
		p.c.dropped.Add(1)
		p.log.Debug("dropping message: queue full", "type", m.Type)
		p.t.rep.unreachable(p.id)
	}
}

// failed records and logs err and reports the peer unreachable. An error
// that repeats the last one is logged at debug level only, so that a peer
// that stays down does not flood the log.
func (p *peer) failed(what string, err error) {
	level := slog.LevelWarn
	if !p.c.setError(err) {
		level = slog.LevelDebug
	}
	p.log.Log(context.Background(), level, what, "err", err)
	p.t.rep.unreachable(p.id)
}

// runMessages keeps a message connection to the peer open, reconnecting
// with backoff, and streams the queue into it until the peer is stopped.
// Frames queued while the peer is unreachable stay queued (up to QueueLen)
// and go out in order once a connection is up.
func (p *peer) runMessages() {
	defer p.t.wg.Done()
	attempt, connects := 0, 0
	for {
		conn, info, err := p.connect(kindMessages)
		if p.ctx.Err() != nil {
			if conn != nil {
				conn.Close()
			}
			return
		}
		if err != nil {
			p.c.dialFailures.Add(1)
			p.failed("cannot connect to peer", err)
			attempt++
			if !wait(p.ctx, p.backoff(attempt)) {
				return
			}
			continue
		}
		if connects++; connects > 1 {
			p.c.reconnects.Add(1)
		}
		p.log.Info("connected to peer", "max_frame", info.maxFrame)
		p.connected.Store(true)
		start := time.Now()
		err = p.stream(conn, info)
		p.connected.Store(false)
		if p.ctx.Err() != nil {
			return
		}
		p.failed("connection to peer broke", err)
		if time.Since(start) > p.t.cfg.MaxBackoff {
			attempt = 0
		}
		attempt++
		if !wait(p.ctx, p.backoff(attempt)) {
			return
		}
	}
}

// backoff is the wait before connection attempt number attempt+1.
func (p *peer) backoff(attempt int) time.Duration {
	return backoff(attempt, p.t.cfg.MinBackoff, p.t.cfg.MaxBackoff, rand.Int64N)
}

// backoff doubles lo for every attempt after the first, caps it at hi, and
// draws the result uniformly from the upper half of that ("equal jitter"),
// so that nodes restarted together do not redial in lockstep. randN(n)
// returns a number in [0, n).
func backoff(attempt int, lo, hi time.Duration, randN func(n int64) int64) time.Duration {
	d := hi
	if attempt < 1 {
		attempt = 1
	}
	if attempt <= 32 {
		if x := lo << (attempt - 1); x > 0 && x < hi {
			d = x
		}
	}
	half := d / 2
	return half + time.Duration(randN(int64(d-half)+1))
}

// connect dials the peer and runs the handshake for a connection of the
// given kind, all within DialTimeout.
func (p *peer) connect(kind byte) (net.Conn, acceptInfo, error) {
	ctx, cancel := context.WithTimeout(p.ctx, p.t.cfg.DialTimeout)
	defer cancel()
	dial := p.t.cfg.dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	conn, err := dial(ctx, "tcp", p.addr)
	if err != nil {
		return nil, acceptInfo{}, fmt.Errorf("transport: dialing peer %d at %s: %w", p.id, p.addr, err)
	}
	// Closing the connection aborts a handshake stuck past the timeout or
	// interrupted by stop.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	h := hello{version: protocolVersion, kind: kind, cluster: p.t.cfg.ClusterID, from: p.t.cfg.NodeID, to: p.id}
	info, err := clientHandshake(conn, p.addr, &h, p.t.cfg.DialTimeout)
	if !stop() && err == nil {
		err = fmt.Errorf("%w: with %s: %w", ErrHandshake, p.addr, context.Cause(ctx))
	}
	if err != nil {
		conn.Close()
		return nil, acceptInfo{}, err
	}
	return conn, info, nil
}

// stream writes queued frames to conn until the peer stops or the
// connection breaks. It takes every frame already queued before it flushes,
// so that a burst of messages costs a few large writes; it never waits for
// an answer before writing more.
func (p *peer) stream(conn net.Conn, info acceptInfo) error {
	defer conn.Close()
	stop := closeOnDone(p.ctx, conn)
	defer stop()
	dead := make(chan error, 1)
	p.t.wg.Add(1)
	go p.watch(conn, dead)

	w := bufio.NewWriterSize(conn, writeBufSize)
	maxBatch := p.t.cfg.QueueLen
	for {
		var f []byte
		select {
		case <-p.ctx.Done():
			return nil
		case err := <-dead:
			return err
		case f = <-p.q:
		}
		var n, bytes uint64
		for i := 0; ; i++ {
			if len(f)-frameHeaderLen > int(info.maxFrame) {
				err := fmt.Errorf("%w: %d bytes, peer %d's limit is %d", ErrMessageTooLarge, len(f)-frameHeaderLen, p.id, info.maxFrame)
				p.c.dropped.Add(1)
				p.failed("dropping message", err)
			} else {
				if len(f) > w.Available() {
					conn.SetWriteDeadline(time.Now().Add(p.t.cfg.WriteTimeout))
				}
				if _, err := w.Write(f); err != nil {
					p.c.dropped.Add(n + 1)
					return fmt.Errorf("transport: writing to peer %d at %s: %w", p.id, p.addr, err)
				}
				n++
				bytes += uint64(len(f))
			}
			if i+1 >= maxBatch {
				break
			}
			select {
			case f = <-p.q:
				continue
			default:
			}
			break
		}
		conn.SetWriteDeadline(time.Now().Add(p.t.cfg.WriteTimeout))
		if err := w.Flush(); err != nil {
			p.c.dropped.Add(n)
			return fmt.Errorf("transport: writing to peer %d at %s: %w", p.id, p.addr, err)
		}
		p.c.msgsSent.Add(n)
		p.c.bytesSent.Add(bytes)
	}
}

// watch reads from a message connection, on which the acceptor sends
// nothing after the handshake except an error frame before it closes. It
// reports why the connection ended on dead, so that the writer reconnects
// without waiting for its next write to fail.
func (p *peer) watch(conn net.Conn, dead chan<- error) {
	defer p.t.wg.Done()
	defer conn.Close()
	fr := frameReader{r: conn, max: maxErrorText}
	typ, n, err := fr.next()
	switch {
	case err == nil && typ == frameError:
		reason, rerr := fr.payload(n)
		if rerr != nil {
			err = fmt.Errorf("transport: peer %d at %s: reading its error frame: %w", p.id, p.addr, rerr)
		} else {
			err = fmt.Errorf("transport: peer %d at %s closed the connection: %s", p.id, p.addr, reason)
		}
	case err == nil:
		err = fmt.Errorf("%w: peer %d at %s sent a %s frame on a message connection", ErrMalformed, p.id, p.addr, frameTypeName(typ))
	case errors.Is(err, io.EOF):
		err = fmt.Errorf("transport: peer %d at %s closed the connection", p.id, p.addr)
	default:
		err = fmt.Errorf("transport: connection to peer %d at %s: %w", p.id, p.addr, err)
	}
	dead <- err
}
