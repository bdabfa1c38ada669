package transport

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/flotilla-dev/flotilla/raft"
)

// readBufSize is the read buffer of an inbound connection.
const readBufSize = 64 << 10

// acceptLoop accepts inbound connections until the listener is closed.
func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	var delay time.Duration
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Like net/http: a failing Accept (out of file descriptors)
			// is retried after a growing pause rather than spinning.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.log.Error("accept failed; retrying", "err", err, "in", delay)
			if !wait(t.ctx, delay) {
				return
			}
			continue
		}
		delay = 0
		if !t.track(c) {
			continue
		}
		t.wg.Add(1)
		go t.serveConn(c)
	}
}

// track registers an inbound connection, or closes it if the transport is
// closing or has MaxInbound connections open.
func (t *Transport) track(c net.Conn) bool {
	t.connMu.Lock()
	defer t.connMu.Unlock()
	if t.ctx.Err() != nil {
		c.Close()
		return false
	}
	if len(t.conns) >= t.cfg.MaxInbound {
		t.inRefused.Add(1)
		t.inLastErr = fmt.Sprintf("%s: too many inbound connections (%d)", c.RemoteAddr(), len(t.conns))
		t.log.Warn("refusing connection: too many open", "remote", c.RemoteAddr(), "open", len(t.conns))
		c.Close()
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *Transport) untrack(c net.Conn) {
	t.connMu.Lock()
	delete(t.conns, c)
	t.connMu.Unlock()
}

// inboundError records and logs the failure of an inbound connection.
func (t *Transport) inboundError(c net.Conn, counter interface{ Add(uint64) uint64 }, msg string, err error) {
	counter.Add(1)
	t.connMu.Lock()
	t.inLastErr = fmt.Sprintf("%s: %v", c.RemoteAddr(), err)
	t.connMu.Unlock()
	t.log.Warn(msg, "remote", c.RemoteAddr(), "err", err)
}

// serveConn runs the acceptor's half of the handshake on c, then reads
// frames from it until it closes, the transport closes, or the peer breaks
// the protocol, which closes c with an error frame and a logged error.
func (t *Transport) serveConn(c net.Conn) {
	defer t.wg.Done()
	defer t.untrack(c)
	defer c.Close()
	stop := closeOnDone(t.ctx, c)
	defer stop()

	h, ok := t.serverHandshake(c)
	if !ok {
		return
	}
	t.inAccepted.Add(1)
	t.log.Debug("accepted peer", "remote", c.RemoteAddr(), "from", h.from, "kind", h.kind)
	in := inbound{t: t, conn: c, from: h.from, c: t.counters(h.from), fr: frameReader{r: bufio.NewReaderSize(c, readBufSize), max: t.cfg.MaxFrameBytes}}
	var err error
	if h.kind == kindMessages {
		err = in.readMessages()
	} else {
		err = in.readSnapshots()
	}
	if err == nil || t.ctx.Err() != nil {
		return
	}
	t.inboundError(c, &t.inProtocolErrors, "closing inbound connection", fmt.Errorf("from node %d: %w", h.from, err))
	if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, net.ErrClosed) {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write(errorFrame(err.Error()))
	}
}

// serverHandshake reads the hello within HandshakeTimeout and answers it.
// It reports whether the connection was accepted.
func (t *Transport) serverHandshake(c net.Conn) (hello, bool) {
	c.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
	h, err := readHello(c)
	if err != nil {
		t.inboundError(c, &t.inRefused, "refusing connection", err)
		if errors.Is(err, ErrHandshake) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isTimeout(err) {
			c.Write(errorFrame(err.Error()))
		}
		return h, false
	}
	if reason := refusal(&h, t.cfg.ClusterID, t.cfg.NodeID); reason != "" {
		t.inboundError(c, &t.inRefused, "refusing connection", fmt.Errorf("%w: from node %d: %s", ErrHandshake, h.from, reason))
		c.Write(errorFrame(reason))
		return h, false
	}
	a := acceptInfo{version: protocolVersion, node: t.cfg.NodeID, maxFrame: uint32(t.cfg.MaxFrameBytes), maxSnapshot: uint64(t.cfg.MaxSnapshotBytes)}
	if _, err := c.Write(a.frame()); err != nil {
		t.inboundError(c, &t.inRefused, "handshake failed", fmt.Errorf("%w: answering node %d: %w", ErrHandshake, h.from, err))
		return h, false
	}
	c.SetDeadline(time.Time{})
	return h, true
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// inbound is the reading side of one accepted connection.
type inbound struct {
	t    *Transport
	conn net.Conn
	from uint64 // the sender, as named in the handshake
	c    *peerCounters
	fr   frameReader
}

// check validates the addressing of a message received on this connection.
func (in *inbound) check(m *raft.Message) error {
	if m.From != in.from || m.To != in.t.cfg.NodeID {
		return fmt.Errorf("%w: message %d->%d on a connection from node %d to node %d", ErrMalformed, m.From, m.To, in.from, in.t.cfg.NodeID)
	}
	return nil
}

// readMessages reads frameMsg frames and hands each message to the
// Handler. It returns nil when the peer closes the connection between
// frames.
func (in *inbound) readMessages() error {
	for {
		typ, n, err := in.fr.next()
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if typ != frameMsg {
			return fmt.Errorf("%w: %s frame on a message connection", ErrMalformed, frameTypeName(typ))
		}
		p, err := in.fr.payload(n)
		if err != nil {
			return err
		}
		m, err := decodeMessage(p)
		if err != nil {
			return err
		}
		if err := in.check(&m); err != nil {
			return err
		}
		in.c.msgsRecv.Add(1)
		in.c.bytesRecv.Add(uint64(frameHeaderLen + n))
		if in.t.dropInbound(m.From) {
			continue
		}
		in.t.h.Receive(m)
	}
}
