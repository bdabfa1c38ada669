package dsort

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/flotilla-dev/flotilla/dsort/wire"
)

// Streaming limits: each peer gets at most sendBufs buffers of
// sendBufRecords records, so a node holds at most N·sendBufs·256 KB of
// records in flight; a full queue blocks the reader (backpressure).
const (
	sendBufRecords = 2560
	sendBufs       = 4
	handshakeWait  = 10 * time.Second
)

// sendBuf is one data frame being filled: a header and then records.
type sendBuf struct{ b []byte }

// add appends rec and reports whether the frame is full.
func (s *sendBuf) add(rec []byte) bool {
	s.b = append(s.b, rec...)
	return len(s.b) == cap(s.b)
}

// peerOut is the bounded queue of frames to one peer: the reader takes
// empty buffers from free and puts full ones on full; the sender goroutine
// writes them and gives them back.
type peerOut struct {
	peer int
	free chan *sendBuf
	full chan *sendBuf // closed by the reader at the end of its input
	done chan Sum      // the sender's total, once End is written

	cmu  sync.Mutex // guards conn
	conn net.Conn   // set once dialled and handshaken

	idle time.Duration // write deadline per frame (0: none)

	wmu    sync.Mutex // serializes frames on conn: the sender's and a failure's Error
	broken bool       // guarded by wmu: a write failed, maybe mid-frame: write no more
}

func (o *peerOut) setConn(c net.Conn) {
	o.cmu.Lock()
	defer o.cmu.Unlock()
	o.conn = c
}

func (o *peerOut) getConn() net.Conn {
	o.cmu.Lock()
	defer o.cmu.Unlock()
	return o.conn
}

// write writes one whole frame (header included) under wmu, failing if
// the peer takes nothing for the idle timeout.
func (o *peerOut) write(b []byte) error {
	var deadline time.Time
	if o.idle > 0 {
		deadline = time.Now().Add(o.idle)
	}
	return o.writeBy(b, deadline)
}

// writeBy writes one whole frame under wmu with a write deadline.
func (o *peerOut) writeBy(b []byte, deadline time.Time) error {
	c := o.getConn()
	o.wmu.Lock()
	defer o.wmu.Unlock()
	if o.broken || c == nil {
		return net.ErrClosed
	}
	c.SetWriteDeadline(deadline)
	_, err := c.Write(b)
	if err != nil {
		o.broken = true
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("node %d took nothing for %v (is it stopped or hung?)", o.peer, o.idle)
		}
	}
	return err
}

func newPeerOut(peer int) *peerOut {
	o := &peerOut{peer: peer, free: make(chan *sendBuf, sendBufs), full: make(chan *sendBuf, sendBufs), done: make(chan Sum, 1)}
	for range sendBufs {
		o.free <- &sendBuf{b: make([]byte, wire.HeaderSize, wire.HeaderSize+sendBufRecords*RecordSize)}
	}
	return o
}

func (o *peerOut) get(ctx context.Context) (*sendBuf, error) {
	select {
	case b := <-o.free:
		b.b = b.b[:wire.HeaderSize]
		return b, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

func (o *peerOut) put(ctx context.Context, b *sendBuf) error {
	select {
	case o.full <- b:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// close ends the queue: the sender writes End after the queued frames.
// Only a reader that read its whole input closes it.
func (o *peerOut) close() { close(o.full) }

// wait returns what the sender sent once it has written End.
func (o *peerOut) wait(ctx context.Context) (Sum, error) {
	select {
	case s := <-o.done:
		return s, nil
	case <-ctx.Done():
		return Sum{}, context.Cause(ctx)
	}
}

// sendTo dials peer o.peer, handshakes, sends our sample if any, then the
// queued data frames and End.
func (nd *node) sendTo(o *peerOut, sample []byte, rev *sync.WaitGroup) error {
	c, err := nd.dial(o.peer)
	if err != nil {
		return err
	}
	o.setConn(c)
	if err := nd.handshake(o, c); err != nil {
		return err
	}
	ended := make(chan struct{}) // closed once End is written
	rev.Go(func() { nd.watchReverse(c, o.peer, ended) })
	if sample != nil {
		b := append(wire.AppendHeader(nil, wire.TypeSample, len(sample)), sample...)
		if err := o.write(b); err != nil {
			return nd.sendErr(o.peer, err)
		}
	}
	var sum Sum
	for {
		var b *sendBuf
		var ok bool
		select {
		case b, ok = <-o.full:
		case <-nd.ctx.Done():
			return context.Cause(nd.ctx)
		}
		if !ok {
			break
		}
		recs := b.b[wire.HeaderSize:]
		sum.Add(recs)
		wire.PutHeader(b.b, wire.TypeData, len(recs))
		if err := o.write(b.b); err != nil {
			return nd.sendErr(o.peer, err)
		}
		nd.sent.Add(int64(len(recs)))
		o.free <- b
	}
	if nd.opt.beforeEnd != nil {
		nd.opt.beforeEnd(nd.ctx, o.peer)
		if nd.ctx.Err() != nil {
			return context.Cause(nd.ctx)
		}
	}
	// From here on a closed connection is the peer finishing, not failing;
	// a failed write of End is still ours to report.
	close(ended)
	end := wire.AppendEnd(wire.AppendHeader(nil, wire.TypeEnd, wire.EndSize), wire.End{Records: sum.Records, Hash: sum.Hash})
	if err := o.write(end); err != nil {
		return nd.sendErr(o.peer, err)
	}
	o.done <- sum
	return nil
}

func (nd *node) sendErr(peer int, err error) error {
	if cause := context.Cause(nd.ctx); cause != nil {
		return cause
	}
	return fmt.Errorf("%w: sending to node %d (%s): %v", ErrPeer, peer, nd.cfg.Servers[peer].Addr(), err)
}

// watchReverse reads what the receiver sends back on our outgoing
// connection: nothing, or an Error frame if it fails. A connection that
// closes before our End is written means the peer died.
func (nd *node) watchReverse(c net.Conn, peer int, ended chan struct{}) {
	t, p, err := wire.NewReader(c).Next()
	select {
	case <-ended:
		return
	default:
	}
	switch {
	case err == nil && t == wire.TypeError:
		nd.fail(fmt.Errorf("%w: node %d (%s) failed: %s", ErrPeer, peer, nd.cfg.Servers[peer].Addr(), p))
	case err == nil:
		nd.fail(fmt.Errorf("%w: node %d sent an unexpected %s frame", ErrPeer, peer, t))
	case nd.ctx.Err() == nil:
		nd.fail(fmt.Errorf("%w: node %d (%s) closed the connection before our stream ended: %v", ErrPeer, peer, nd.cfg.Servers[peer].Addr(), err))
	}
}

// dial connects to peer j, retrying until DialTimeout.
func (nd *node) dial(j int) (net.Conn, error) {
	addr := nd.cfg.Servers[j].Addr()
	wait := nd.opt.DialTimeout
	if wait <= 0 {
		wait = 30 * time.Second
	}
	deadline := time.Now().Add(wait)
	backoff := 20 * time.Millisecond
	var d net.Dialer
	for {
		ctx, cancel := context.WithDeadline(nd.ctx, deadline)
		c, err := d.DialContext(ctx, "tcp", addr)
		cancel()
		if err == nil {
			if !nd.track(c) {
				return nil, context.Cause(nd.ctx)
			}
			return c, nil
		}
		if nd.ctx.Err() != nil {
			return nil, context.Cause(nd.ctx)
		}
		nd.log.Debug("dsort: peer not up yet", "node", nd.id, "peer", j, "addr", addr, "err", err)
		if !time.Now().Add(backoff).Before(deadline) {
			return nil, fmt.Errorf("%w: node %d at %s did not answer within %v (is it running with the same config?): %v", ErrPeer, j, addr, wait, err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-nd.ctx.Done():
			t.Stop()
			return nil, context.Cause(nd.ctx)
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (nd *node) hello(to int) wire.Hello {
	return wire.Hello{From: uint16(nd.id), To: uint16(to), Nodes: uint16(nd.n), ConfigHash: nd.hash}
}

// handshake sends our Hello on an outgoing connection and checks the Accept.
func (nd *node) handshake(o *peerOut, c net.Conn) error {
	j := o.peer
	addr := nd.cfg.Servers[j].Addr()
	c.SetReadDeadline(time.Now().Add(handshakeWait))
	defer c.SetReadDeadline(time.Time{})
	hello := wire.AppendHello(wire.AppendHeader(nil, wire.TypeHello, wire.HelloSize), nd.hello(j))
	if err := o.write(hello); err != nil {
		return nd.sendErr(j, err)
	}
	t, p, err := wire.NewReader(c).Next()
	if err != nil {
		if cause := context.Cause(nd.ctx); cause != nil {
			return cause
		}
		return fmt.Errorf("%w: node %d at %s closed the connection during the handshake (did it fail?): %v", ErrPeer, j, addr, err)
	}
	switch t {
	case wire.TypeAccept:
	case wire.TypeError:
		return fmt.Errorf("%w: node %d at %s refused us: %s", ErrPeer, j, addr, p)
	default:
		return fmt.Errorf("%w: node %d at %s answered the handshake with a %s frame", ErrPeer, j, addr, t)
	}
	h, err := wire.ParseHello(p)
	if err != nil {
		return fmt.Errorf("%w: handshake with node %d at %s: %v", ErrPeer, j, addr, err)
	}
	if err := nd.checkHello(h, j); err != nil {
		return err
	}
	nd.streams.Add(1)
	return nil
}

// checkHello checks a peer's Hello (or Accept) against our config.
func (nd *node) checkHello(h wire.Hello, from int) error {
	if h.ConfigHash != nd.hash || int(h.Nodes) != nd.n {
		return fmt.Errorf("%w: node %d runs a config of %d servers with hash %x, node %d one of %d servers with hash %x: give every node the same config file",
			ErrMismatch, h.From, h.Nodes, h.ConfigHash[:6], nd.id, nd.n, nd.hash[:6])
	}
	if from >= 0 && int(h.From) != from {
		return fmt.Errorf("%w: the server at %s says it is node %d, the config says %d", ErrMismatch, nd.cfg.Servers[from].Addr(), h.From, from)
	}
	if int(h.To) != nd.id && from < 0 {
		return fmt.Errorf("%w: node %d dialled us (node %d) as node %d", ErrMismatch, h.From, nd.id, h.To)
	}
	return nil
}

// acceptAll accepts one connection from every peer and starts a receiver
// for each on wg. Handshakes run concurrently, so a stray or silent client
// cannot hold up the peers; once every peer is in, the listener closes.
func (nd *node) acceptAll(ln net.Listener, wg *sync.WaitGroup) error {
	var mu sync.Mutex
	seen := make([]bool, nd.n)
	got := 0
	pending := map[net.Conn]bool{} // handshakes in progress
	complete := func() bool { mu.Lock(); defer mu.Unlock(); return got == nd.n-1 }
	// claim reserves peer from for c; false if taken. The last claim
	// closes the listener and any other handshake still in progress.
	claim := func(c net.Conn, from int) bool {
		mu.Lock()
		defer mu.Unlock()
		delete(pending, c)
		if seen[from] {
			return false
		}
		seen[from] = true
		if got++; got == nd.n-1 {
			ln.Close()
			for p := range pending {
				p.Close()
			}
		}
		return true
	}
	if nd.n == 1 {
		ln.Close()
		return nil
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			if complete() {
				return nil
			}
			if cause := context.Cause(nd.ctx); cause != nil {
				return cause
			}
			return fmt.Errorf("accept: %w", err)
		}
		if !nd.track(c) {
			return context.Cause(nd.ctx)
		}
		mu.Lock()
		pending[c] = true
		mu.Unlock()
		wg.Go(func() {
			from, r, err := nd.accept(c, func(from int) bool { return claim(c, from) })
			if errors.Is(err, ErrMismatch) {
				nd.fail(err)
				return
			}
			if err != nil && complete() {
				c.Close() // a stray client, cut off once every peer is in
				return
			}
			if err != nil {
				nd.log.Warn("dsort: dropped a connection", "node", nd.id, "remote", c.RemoteAddr().String(), "err", err)
				c.Close()
				return
			}
			nd.streams.Add(1)
			nd.addIncoming(c)
			nd.fail(nd.receive(c, r, from))
		})
	}
}

// accept reads and checks a Hello, claims its sender and answers it.
func (nd *node) accept(c net.Conn, claim func(from int) bool) (int, *wire.Reader, error) {
	c.SetDeadline(time.Now().Add(handshakeWait))
	defer c.SetDeadline(time.Time{})
	r := wire.NewReader(c)
	t, p, err := r.Next()
	if err != nil {
		return 0, nil, err
	}
	if t != wire.TypeHello {
		return 0, nil, fmt.Errorf("first frame is %s, want hello", t)
	}
	h, err := wire.ParseHello(p)
	if err != nil {
		return 0, nil, err
	}
	if err := nd.checkHello(h, -1); err != nil {
		wire.WriteFrame(c, wire.TypeError, []byte(truncate(err.Error())))
		return 0, nil, err
	}
	from := int(h.From)
	if from >= nd.n || from == nd.id || !claim(from) {
		err := fmt.Errorf("%w: a second connection from node %d", ErrMismatch, from)
		wire.WriteFrame(c, wire.TypeError, []byte(truncate(err.Error())))
		return 0, nil, err
	}
	if err := wire.WriteFrame(c, wire.TypeAccept, wire.AppendHello(nil, nd.hello(from))); err != nil {
		return 0, nil, err
	}
	return from, r, nil
}

func truncate(s string) string {
	if len(s) > wire.MaxError {
		return s[:wire.MaxError]
	}
	return s
}

// peerSample is the sample a peer sent.
type peerSample struct {
	from int
	keys []byte
}

// receive reads a peer's stream: its sample (sampled partitioning), data
// frames, and End, whose count and checksum must match what arrived.
func (nd *node) receive(c net.Conn, r *wire.Reader, from int) error {
	addr := nd.cfg.Servers[from].Addr()
	var sum Sum
	wantSample := nd.cfg.Partition == PartitionSample
	idle := nd.opt.idle()
	for {
		if nd.ctx.Err() == nil {
			c.SetReadDeadline(time.Now().Add(idle))
		}
		t, p, err := r.Next()
		if err != nil {
			if cause := context.Cause(nd.ctx); cause != nil {
				return cause
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return fmt.Errorf("%w: node %d (%s) sent nothing for %v after %d records (is it stopped or hung?)",
					ErrPeer, from, addr, idle, sum.Records)
			}
			return fmt.Errorf("%w: the stream from node %d (%s) ended after %d records without an end frame (it failed or was killed): %v",
				ErrPeer, from, addr, sum.Records, err)
		}
		if wantSample != (t == wire.TypeSample) && t != wire.TypeError {
			return fmt.Errorf("%w: node %d sent a %s frame where a sample frame belongs", ErrPeer, from, t)
		}
		if nd.ctx.Err() != nil {
			continue // failing: drain until the peer closes (see halfClose)
		}
		switch t {
		case wire.TypeSample:
			nd.samples <- peerSample{from: from, keys: append([]byte(nil), p...)}
			wantSample = false
		case wire.TypeData:
			sum.Add(p)
			nd.mu.Lock()
			err := nd.runs.add(p)
			nd.mu.Unlock()
			if err != nil {
				return err
			}
			nd.recv.Add(int64(len(p)))
		case wire.TypeEnd:
			e, err := wire.ParseEnd(p)
			if err != nil {
				return fmt.Errorf("%w: node %d: %v", ErrPeer, from, err)
			}
			if e.Records != sum.Records || e.Hash != sum.Hash {
				return fmt.Errorf("%w: node %d sent %d records (checksum %016x) but %d arrived (checksum %016x)",
					ErrPeer, from, e.Records, e.Hash, sum.Records, sum.Hash)
			}
			return nil
		case wire.TypeError:
			return fmt.Errorf("%w: node %d (%s) failed: %s", ErrPeer, from, addr, p)
		default:
			return fmt.Errorf("%w: node %d sent an unexpected %s frame", ErrPeer, from, t)
		}
	}
}

// addIncoming remembers an accepted connection so a failure can be
// reported back on it.
func (nd *node) addIncoming(c net.Conn) {
	nd.connMu.Lock()
	defer nd.connMu.Unlock()
	nd.incoming = append(nd.incoming, c)
}

// broadcastError tells every peer why we stop, best effort, before the
// connections close: back on the connections peers opened to us, and
// between frames on the ones we opened to them.
func (nd *node) broadcastError(err error, outs []*peerOut) {
	nd.connMu.Lock()
	in := append([]net.Conn(nil), nd.incoming...)
	nd.connMu.Unlock()
	msg := []byte(truncate(fmt.Sprintf("node %d: %v", nd.id, err)))
	frame := append(wire.AppendHeader(nil, wire.TypeError, len(msg)), msg...)
	deadline := time.Now().Add(500 * time.Millisecond)
	var wg sync.WaitGroup
	for _, c := range in {
		wg.Go(func() {
			c.SetWriteDeadline(deadline)
			c.Write(frame)
		})
	}
	for _, o := range outs {
		if o == nil {
			continue
		}
		wg.Go(func() {
			c := o.getConn()
			if c == nil {
				return
			}
			c.SetWriteDeadline(deadline) // unblocks a sender stuck on a full peer
			o.writeBy(frame, deadline)
		})
	}
	wg.Wait()
}

// notifyPeers tells the peers that are already up that node id cannot
// run, so that they fail at once with its reason instead of waiting out
// their dial timeout: one quick dial each, a handshake, an Error frame.
func notifyPeers(ctx context.Context, cfg Config, id int, reason error) {
	hash := cfg.Hash()
	msg := []byte(truncate(fmt.Sprintf("node %d: %v", id, reason)))
	var wg sync.WaitGroup
	for j, s := range cfg.Servers {
		if j == id {
			continue
		}
		wg.Go(func() {
			d := net.Dialer{Timeout: time.Second}
			c, err := d.DialContext(ctx, "tcp", s.Addr())
			if err != nil {
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(2 * time.Second))
			h := wire.Hello{From: uint16(id), To: uint16(j), Nodes: uint16(len(cfg.Servers)), ConfigHash: hash}
			if wire.WriteFrame(c, wire.TypeHello, wire.AppendHello(nil, h)) != nil {
				return
			}
			if t, _, err := wire.NewReader(c).Next(); err != nil || t != wire.TypeAccept {
				return
			}
			wire.WriteFrame(c, wire.TypeError, msg)
			if tc, ok := c.(*net.TCPConn); ok {
				tc.CloseWrite() // let the Error arrive before the close
			}
			io.Copy(io.Discard, c) // until the peer closes or the deadline
		})
	}
	wg.Wait()
}
