// Package wire is dsort's peer-to-peer framing on raw TCP: a 5-byte header
// (type, big-endian payload length) and a bounded payload. The frames and
// their order are described in docs/dsort.md; every decoder here checks
// lengths before it allocates or reads.
package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Type is a frame type.
type Type uint8

// Frame types, in the order they appear on a stream.
const (
	TypeHello  Type = iota + 1 // sender → receiver: who I am and what config I run
	TypeAccept                 // receiver → sender: Hello accepted (same payload as Hello)
	TypeSample                 // sender → receiver: the sender's key sample (sampled partitioning only)
	TypeData                   // sender → receiver: whole records
	TypeEnd                    // sender → receiver: end of stream, with the count and checksum sent
	TypeError                  // either way: the sender failed or refused; a UTF-8 message
)

func (t Type) String() string {
	switch t {
	case TypeHello:
		return "hello"
	case TypeAccept:
		return "accept"
	case TypeSample:
		return "sample"
	case TypeData:
		return "data"
	case TypeEnd:
		return "end"
	case TypeError:
		return "error"
	}
	return fmt.Sprintf("type %d", uint8(t))
}

// Limits and sizes.
const (
	HeaderSize   = 5       // type (1 byte) and payload length (4 bytes, big-endian)
	MaxPayload   = 1 << 20 // largest payload of any frame
	MaxError     = 1024    // largest Error message
	RecordSize   = 100     // a Data payload is a whole number of records
	KeySize      = 10      // a Sample payload is a whole number of keys
	HelloSize    = 44      // magic, version, from, to, nodes, config hash
	EndSize      = 16      // records, checksum
	Version      = 1       // protocol version in Hello
	Magic        = "FLDS"  // first bytes of a Hello payload
	HashSize     = 32      // SHA-256 of the canonical config
	MaxDataBytes = MaxPayload / RecordSize * RecordSize
)

// Errors. Each decoding error wraps one of these.
var (
	ErrTooLarge  = errors.New("wire: frame too large")
	ErrMalformed = errors.New("wire: malformed frame")
	ErrTruncated = errors.New("wire: stream truncated")
)

// Hello opens a stream: the sender says who it is, whom it means to reach
// and which configuration it runs. The receiver answers with an Accept
// carrying its own Hello, or an Error.
type Hello struct {
	From, To   uint16         // server IDs of the sender and the intended receiver
	Nodes      uint16         // number of servers in the config
	ConfigHash [HashSize]byte // SHA-256 of the canonical config (see dsort.Config.Hash)
}

// AppendHello appends h's payload to b.
func AppendHello(b []byte, h Hello) []byte {
	b = append(b, Magic...)
	b = binary.BigEndian.AppendUint16(b, Version)
	b = binary.BigEndian.AppendUint16(b, h.From)
	b = binary.BigEndian.AppendUint16(b, h.To)
	b = binary.BigEndian.AppendUint16(b, h.Nodes)
	return append(b, h.ConfigHash[:]...)
}

// ParseHello decodes a Hello or Accept payload.
func ParseHello(p []byte) (Hello, error) {
	var h Hello
	if len(p) != HelloSize {
		return h, fmt.Errorf("%w: hello of %d bytes, want %d", ErrMalformed, len(p), HelloSize)
	}
	if string(p[:4]) != Magic {
		return h, fmt.Errorf("%w: hello magic %q, want %q (not a dsort peer?)", ErrMalformed, p[:4], Magic)
	}
	if v := binary.BigEndian.Uint16(p[4:]); v != Version {
		return h, fmt.Errorf("%w: protocol version %d, want %d", ErrMalformed, v, Version)
	}
	h.From = binary.BigEndian.Uint16(p[6:])
	h.To = binary.BigEndian.Uint16(p[8:])
	h.Nodes = binary.BigEndian.Uint16(p[10:])
	copy(h.ConfigHash[:], p[12:])
	return h, nil
}

// End closes a stream: the number of records sent and the sum of their
// CRC-32C (see dsort.Sum), which the receiver checks against what it got.
type End struct {
	Records uint64
	Hash    uint64
}

// AppendEnd appends e's payload to b.
func AppendEnd(b []byte, e End) []byte {
	b = binary.BigEndian.AppendUint64(b, e.Records)
	return binary.BigEndian.AppendUint64(b, e.Hash)
}

// ParseEnd decodes an End payload.
func ParseEnd(p []byte) (End, error) {
	if len(p) != EndSize {
		return End{}, fmt.Errorf("%w: end of %d bytes, want %d", ErrMalformed, len(p), EndSize)
	}
	return End{Records: binary.BigEndian.Uint64(p), Hash: binary.BigEndian.Uint64(p[8:])}, nil
}

// AppendHeader appends a frame header to b.
func AppendHeader(b []byte, t Type, n int) []byte {
	b = append(b, byte(t))
	return binary.BigEndian.AppendUint32(b, uint32(n))
}

// PutHeader writes a frame header into b[:HeaderSize].
func PutHeader(b []byte, t Type, n int) {
	b[0] = byte(t)
	binary.BigEndian.PutUint32(b[1:], uint32(n))
}

// WriteFrame writes one frame to w in a single Write.
func WriteFrame(w io.Writer, t Type, payload []byte) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("%w: %s payload of %d bytes, limit %d", ErrTooLarge, t, len(payload), MaxPayload)
	}
	b := make([]byte, 0, HeaderSize+len(payload))
	b = append(AppendHeader(b, t, len(payload)), payload...)
	_, err := w.Write(b)
	return err
}

// Reader reads frames from a stream. The payload a call returns is valid
// until the next call.
type Reader struct {
	r   *bufio.Reader
	buf []byte
}

// NewReader returns a Reader on r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Next reads the next frame. A clean end of stream before any header byte
// is io.EOF; a stream cut inside a frame is ErrTruncated; a length over the
// type's bound is ErrTooLarge before any payload is read; a payload that
// is not a whole number of records (Data) or keys (Sample) or has the wrong
// size (Hello, Accept, End) is ErrMalformed.
func (r *Reader) Next() (Type, []byte, error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r.r, h[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return 0, nil, fmt.Errorf("%w: inside a frame header", ErrTruncated)
		}
		return 0, nil, err
	}
	t, n := Type(h[0]), int(binary.BigEndian.Uint32(h[1:]))
	if err := checkLength(t, n); err != nil {
		return t, nil, err
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n, max(n, 64<<10))
	}
	p := r.buf[:n]
	if _, err := io.ReadFull(r.r, p); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return t, nil, fmt.Errorf("%w: inside a %s frame of %d bytes", ErrTruncated, t, n)
		}
		return t, nil, err
	}
	if t == TypeError {
		p = bytes.ToValidUTF8(p, []byte("?"))
	}
	return t, p, nil
}

func checkLength(t Type, n int) error {
	limit, unit := 0, 0
	switch t {
	case TypeHello, TypeAccept:
		limit, unit = HelloSize, HelloSize
	case TypeEnd:
		limit, unit = EndSize, EndSize
	case TypeError:
		limit, unit = MaxError, 1
	case TypeSample:
		limit, unit = MaxPayload/KeySize*KeySize, KeySize
	case TypeData:
		limit, unit = MaxDataBytes, RecordSize
	default:
		return fmt.Errorf("%w: unknown frame type %d", ErrMalformed, uint8(t))
	}
	if n > limit {
		return fmt.Errorf("%w: %s frame of %d bytes, limit %d", ErrTooLarge, t, n, limit)
	}
	if n%unit != 0 || (unit > 1 && unit == limit && n != limit) {
		return fmt.Errorf("%w: %s frame of %d bytes, want a multiple of %d", ErrMalformed, t, n, unit)
	}
	return nil
}
