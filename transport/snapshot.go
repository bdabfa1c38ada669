package transport

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/flotilla-dev/flotilla/raft"
)

// A snapshot travels on its own connection (kind kindSnapshots), so that a
// large one never holds up the message connection:
//
//	frameSnapHeader: uvarint total | MsgSnap encoded with empty Snapshot.Data
//	frameSnapChunk:  the next ≤ maxFrame bytes of the data, repeated until
//	                 total bytes have been sent
//
// The receiver delivers the message once the last chunk is in. The sender
// dials one connection per snapshot and closes it afterwards.

// initialSnapCap bounds the buffer a receiver allocates for a snapshot
// before its data arrives; it then grows with the chunks, never beyond the
// declared total.
const initialSnapCap = 1 << 20

// runSnapshots streams the peer's queued snapshots one at a time until the
// peer is stopped, then reports those still queued as failed.
func (p *peer) runSnapshots() {
	defer p.t.wg.Done()
	for {
		select {
		case <-p.ctx.Done():
			for {
				select {
				case <-p.snapq:
					p.c.snapsFailed.Add(1)
					p.t.rep.snapshot(p.id, false)
				default:
					return
				}
			}
		case m := <-p.snapq:
			if err := p.sendSnapshot(&m); err != nil {
				p.c.snapsFailed.Add(1)
				p.c.dropped.Add(1)
				if p.ctx.Err() == nil {
					p.failed("snapshot stream failed", err)
				}
				p.t.rep.snapshot(p.id, false)
				continue
			}
			p.c.snapsSent.Add(1)
			p.c.msgsSent.Add(1)
			p.t.rep.snapshot(p.id, true)
		}
	}
}

// sendSnapshot dials a snapshot connection and streams m through it: the
// header frame, then the data in chunks as large as the peer accepts. It
// returns nil once the last chunk is flushed.
func (p *peer) sendSnapshot(m *raft.Message) error {
	hdr, s := *m, *m.Snapshot
	data := s.Data
	s.Data = nil
	hdr.Snapshot = &s
	conn, info, err := p.connect(kindSnapshots)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := closeOnDone(p.ctx, conn)
	defer stop()
	if uint64(len(data)) > info.maxSnapshot {
		return fmt.Errorf("%w: %d bytes, peer %d accepts at most %d", ErrSnapshotTooLarge, len(data), p.id, info.maxSnapshot)
	}
	maxFrame := int(info.maxFrame)
	n := uvarintLen(uint64(len(data))) + messageSize(&hdr)
	if n > maxFrame {
		return fmt.Errorf("%w: snapshot header of %d bytes, peer %d's limit is %d", ErrMessageTooLarge, n, p.id, maxFrame)
	}
	w := bufio.NewWriterSize(conn, writeBufSize)
	deadline := func() { conn.SetWriteDeadline(time.Now().Add(p.t.cfg.WriteTimeout)) }
	deadline()
	b := appendFrameHeader(make([]byte, 0, frameHeaderLen+n), frameSnapHeader, n)
	b = binary.AppendUvarint(b, uint64(len(data)))
	b = appendMessage(b, &hdr)
	w.Write(b)
	sent := uint64(len(b))
	var fh []byte
	for off := 0; off < len(data); {
		if p.t.cfg.beforeChunk != nil {
			p.t.cfg.beforeChunk()
		}
		chunk := data[off:min(off+maxFrame, len(data))]
		deadline()
		fh = appendFrameHeader(fh[:0], frameSnapChunk, len(chunk))
		w.Write(fh)
		if _, err := w.Write(chunk); err != nil {
			return fmt.Errorf("transport: streaming snapshot to peer %d at %s: %w", p.id, p.addr, err)
		}
		off += len(chunk)
		sent += uint64(frameHeaderLen + len(chunk))
	}
	deadline()
	if err := w.Flush(); err != nil {
		return fmt.Errorf("transport: streaming snapshot to peer %d at %s: %w", p.id, p.addr, err)
	}
	p.c.bytesSent.Add(sent)
	p.log.Info("snapshot sent", "index", hdr.Snapshot.Meta.Index, "bytes", len(data))
	return nil
}

// readSnapshots reads snapshot streams from a snapshot connection and hands
// each reassembled MsgSnap to the Handler. A stream cut short is discarded.
func (in *inbound) readSnapshots() error {
	for {
		in.idleDeadline()
		typ, n, err := in.fr.next()
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if typ != frameSnapHeader {
			return fmt.Errorf("%w: %s frame where a snapshot header belongs", ErrMalformed, frameTypeName(typ))
		}
		m, total, err := in.snapshotHeader(n)
		if err != nil {
			return err
		}
		data, frames, err := in.snapshotData(total)
		if err != nil {
			return fmt.Errorf("snapshot %d/%d: %w", m.Snapshot.Meta.Term, m.Snapshot.Meta.Index, err)
		}
		m.Snapshot.Data = data
		in.c.msgsRecv.Add(1)
		in.c.snapsRecv.Add(1)
		in.c.bytesRecv.Add(uint64(frameHeaderLen*(1+frames)+n) + total)
		in.t.log.Info("snapshot received", "from", m.From, "index", m.Snapshot.Meta.Index, "bytes", total)
		if in.t.dropInbound(m.From) {
			continue
		}
		in.t.h.Receive(m)
	}
}

// idleDeadline gives the sender of a snapshot stream WriteTimeout to send
// its next frame, so that a stalled stream does not pin its buffer forever.
func (in *inbound) idleDeadline() {
	in.conn.SetReadDeadline(time.Now().Add(in.t.cfg.WriteTimeout))
}

// snapshotHeader reads and checks the payload of a frameSnapHeader.
func (in *inbound) snapshotHeader(n int) (raft.Message, uint64, error) {
	p, err := in.fr.payload(n)
	if err != nil {
		return raft.Message{}, 0, err
	}
	total, k := binary.Uvarint(p)
	if k <= 0 {
		return raft.Message{}, 0, fmt.Errorf("%w: snapshot header: bad total length", ErrMalformed)
	}
	if total > uint64(in.t.cfg.MaxSnapshotBytes) {
		return raft.Message{}, 0, fmt.Errorf("%w: peer announced %d bytes, limit %d", ErrSnapshotTooLarge, total, in.t.cfg.MaxSnapshotBytes)
	}
	m, err := decodeMessage(p[k:])
	if err != nil {
		return raft.Message{}, 0, fmt.Errorf("snapshot header: %w", err)
	}
	if m.Type != raft.MsgSnap || m.Snapshot == nil || len(m.Snapshot.Data) != 0 {
		return raft.Message{}, 0, fmt.Errorf("%w: snapshot header holds %s, not a MsgSnap without data", ErrMalformed, m.Type)
	}
	if err := in.check(&m); err != nil {
		return raft.Message{}, 0, err
	}
	return m, total, nil
}

// snapshotData reads chunk frames until total bytes have arrived and returns
// the data and the number of frames it took. The buffer
// starts at no more than initialSnapCap and doubles as data arrives, so a
// sender that announces a huge snapshot and stops costs little memory.
func (in *inbound) snapshotData(total uint64) (data []byte, frames int, err error) {
	if total == 0 {
		return nil, 0, nil
	}
	buf := make([]byte, 0, min(total, initialSnapCap))
	for uint64(len(buf)) < total {
		in.idleDeadline()
		typ, n, err := in.fr.next()
		if err != nil {
			return nil, frames, fmt.Errorf("after %d of %d bytes: %w", len(buf), total, truncated(err))
		}
		left := total - uint64(len(buf))
		if typ != frameSnapChunk || n == 0 || uint64(n) > left {
			return nil, frames, fmt.Errorf("%w: %s frame of %d bytes with %d snapshot bytes to come", ErrMalformed, frameTypeName(typ), n, left)
		}
		if need := len(buf) + n; need > cap(buf) {
			grown := make([]byte, len(buf), min(max(2*uint64(cap(buf)), uint64(need)), total))
			copy(grown, buf)
			buf = grown
		}
		if _, err := io.ReadFull(in.fr.r, buf[len(buf):len(buf)+n]); err != nil {
			return nil, frames, fmt.Errorf("after %d of %d bytes: %w", len(buf), total, truncated(err))
		}
		buf = buf[:len(buf)+n]
		frames++
	}
	return buf, frames, nil
}
