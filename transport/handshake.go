package transport

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"
)

// Every connection opens with a fixed 32-byte hello from the dialer:
//
//	magic "FLTR" | version u16 | kind u8 | flags u8 (0) | cluster u64 | from u64 | to u64
//
// all big-endian. The acceptor answers with one frame: frameAccept carrying
// an acceptInfo, or frameError carrying the reason it refuses, after which it
// closes the connection. The hello and both answer frames keep this layout in
// every protocol version, so that a version mismatch is reported clearly.
const helloLen = 32

// magic opens every connection.
var magic = [4]byte{'F', 'L', 'T', 'R'}

// protocolVersion is the version of the framing and message encoding this
// package speaks. An acceptor refuses any other.
const protocolVersion = 1

// Connection kinds, named in the hello.
const (
	// kindMessages carries frameMsg frames, many per connection, for as
	// long as the connection lives.
	kindMessages byte = iota + 1
	// kindSnapshots carries snapshot streams: a frameSnapHeader followed by
	// the frameSnapChunk frames holding its data.
	kindSnapshots
)

// hello is the dialer's half of the handshake.
type hello struct {
	version uint16
	kind    byte
	flags   byte
	cluster uint64
	from    uint64 // the dialer's node ID
	to      uint64 // the node ID the dialer means to reach
}

func (h *hello) marshal() []byte {
	b := make([]byte, 0, helloLen)
	b = append(b, magic[:]...)
	b = binary.BigEndian.AppendUint16(b, h.version)
	b = append(b, h.kind, h.flags)
	b = binary.BigEndian.AppendUint64(b, h.cluster)
	b = binary.BigEndian.AppendUint64(b, h.from)
	return binary.BigEndian.AppendUint64(b, h.to)
}

// readHello reads and parses a hello, checking only the magic.
func readHello(r io.Reader) (hello, error) {
	var b [helloLen]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return hello{}, fmt.Errorf("%w: reading hello: %w", ErrHandshake, err)
	}
	if [4]byte(b[:4]) != magic {
		return hello{}, fmt.Errorf("%w: bad magic %q: not a flotilla peer", ErrHandshake, b[:4])
	}
	return hello{
		version: binary.BigEndian.Uint16(b[4:]),
		kind:    b[6],
		flags:   b[7],
		cluster: binary.BigEndian.Uint64(b[8:]),
		from:    binary.BigEndian.Uint64(b[16:]),
		to:      binary.BigEndian.Uint64(b[24:]),
	}, nil
}

// acceptInfo is the acceptor's half of the handshake: the limits the dialer
// must respect when sending to it.
//
//	version u16 | node u64 | maxFrame u32 | maxSnapshot u64
type acceptInfo struct {
	version     uint16
	node        uint64
	maxFrame    uint32
	maxSnapshot uint64
}

const acceptLen = 22

func (a *acceptInfo) frame() []byte {
	b := appendFrameHeader(make([]byte, 0, frameHeaderLen+acceptLen), frameAccept, acceptLen)
	b = binary.BigEndian.AppendUint16(b, a.version)
	b = binary.BigEndian.AppendUint64(b, a.node)
	b = binary.BigEndian.AppendUint32(b, a.maxFrame)
	return binary.BigEndian.AppendUint64(b, a.maxSnapshot)
}

func parseAccept(p []byte) (acceptInfo, error) {
	if len(p) != acceptLen {
		return acceptInfo{}, fmt.Errorf("%w: accept frame of %d bytes, want %d", ErrHandshake, len(p), acceptLen)
	}
	return acceptInfo{
		version:     binary.BigEndian.Uint16(p),
		node:        binary.BigEndian.Uint64(p[2:]),
		maxFrame:    binary.BigEndian.Uint32(p[10:]),
		maxSnapshot: binary.BigEndian.Uint64(p[14:]),
	}, nil
}

// RefusedError records that a peer refused a connection. It matches
// ErrRefused under errors.Is.
type RefusedError struct {
	// Addr is the address dialed.
	Addr string
	// Reason is the peer's explanation, as sent in its error frame.
	Reason string
}

// Error says which peer refused and why, e.g. "transport: peer
// 127.0.0.1:7002 refused: cluster ID mismatch: ...".
func (e *RefusedError) Error() string {
	return fmt.Sprintf("transport: peer %s refused: %s", e.Addr, e.Reason)
}

// Is reports whether target is ErrRefused.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// refusal checks a hello against this node's identity and returns the reason
// to refuse it, or "" to accept it.
func refusal(h *hello, cluster, self uint64) string {
	switch {
	case h.version != protocolVersion:
		return fmt.Sprintf("unsupported protocol version %d: this node speaks version %d", h.version, protocolVersion)
	case h.kind != kindMessages && h.kind != kindSnapshots:
		return fmt.Sprintf("unknown connection kind %d", h.kind)
	case h.flags != 0:
		return fmt.Sprintf("unknown hello flags %#x", h.flags)
	case h.cluster != cluster:
		return fmt.Sprintf("cluster ID mismatch: the dialer is in cluster %d, this node is in cluster %d (give both the same cluster ID)", h.cluster, cluster)
	case h.to != self:
		return fmt.Sprintf("wrong node: the dialer wants node %d, this is node %d (check its peer address list)", h.to, self)
	case h.from == 0 || h.from == self:
		return fmt.Sprintf("invalid sender node ID %d", h.from)
	}
	return ""
}

// clientHandshake runs the dialer's half of the handshake on c within
// timeout and returns the acceptor's limits.
func clientHandshake(c net.Conn, addr string, h *hello, timeout time.Duration) (acceptInfo, error) {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return acceptInfo{}, err
	}
	if _, err := c.Write(h.marshal()); err != nil {
		return acceptInfo{}, fmt.Errorf("%w: writing hello to %s: %w", ErrHandshake, addr, err)
	}
	fr := frameReader{r: c, max: maxErrorText}
	typ, n, err := fr.next()
	if err != nil {
		return acceptInfo{}, fmt.Errorf("%w: reading answer from %s: %w", ErrHandshake, addr, err)
	}
	p, err := fr.payload(n)
	if err != nil {
		return acceptInfo{}, fmt.Errorf("%w: reading answer from %s: %w", ErrHandshake, addr, err)
	}
	switch typ {
	case frameError:
		return acceptInfo{}, &RefusedError{Addr: addr, Reason: string(p)}
	case frameAccept:
	default:
		return acceptInfo{}, fmt.Errorf("%w: %s answered with a %s frame", ErrHandshake, addr, frameTypeName(typ))
	}
	a, err := parseAccept(p)
	if err != nil {
		return acceptInfo{}, err
	}
	switch {
	case a.version != protocolVersion:
		return acceptInfo{}, fmt.Errorf("%w: %s accepted with protocol version %d, we speak %d", ErrHandshake, addr, a.version, protocolVersion)
	case a.node != h.to:
		return acceptInfo{}, fmt.Errorf("%w: %s is node %d, want node %d", ErrHandshake, addr, a.node, h.to)
	case a.maxFrame < minFrameBytes:
		return acceptInfo{}, fmt.Errorf("%w: %s limits frames to %d bytes, below the minimum %d", ErrHandshake, addr, a.maxFrame, minFrameBytes)
	}
	return a, c.SetDeadline(time.Time{})
}
