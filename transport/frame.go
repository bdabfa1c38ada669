package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/flotilla-dev/flotilla/raft"
)

// Errors returned or recorded by the transport. They are wrapped with
// context; test for them with errors.Is.
var (
	// ErrFrameTooLarge means a frame's length prefix exceeds the receiver's
	// limit (Config.MaxFrameBytes). The frame is rejected before any of it
	// is read or allocated, and the connection is closed.
	ErrFrameTooLarge = errors.New("transport: frame too large")
	// ErrMessageTooLarge means a message encodes to more than one frame can
	// hold. The message is dropped; lower raft's per-message size limit or
	// raise MaxFrameBytes on every node.
	ErrMessageTooLarge = errors.New("transport: message too large for a frame")
	// ErrSnapshotTooLarge means a snapshot exceeds the receiver's
	// MaxSnapshotBytes.
	ErrSnapshotTooLarge = errors.New("transport: snapshot too large")
	// ErrMalformed means bytes on the wire did not decode: a bad frame type,
	// a bad message encoding or a frame out of sequence.
	ErrMalformed = errors.New("transport: malformed input")
	// ErrHandshake means a connection's handshake failed: bad magic, a
	// version or cluster mismatch, or a connection meant for another node.
	ErrHandshake = errors.New("transport: handshake failed")
	// ErrRefused means the peer refused our handshake; the wrapping
	// *RefusedError carries the peer's reason.
	ErrRefused = errors.New("transport: connection refused by peer")
)

// A frame on the wire is
//
//	length u32 big-endian | type u8 | payload (length bytes)
//
// where length counts the payload only and is at most the receiver's
// MaxFrameBytes.
const frameHeaderLen = 5

// Frame types. Zero is never valid.
const (
	// frameAccept answers a valid handshake; its payload is an acceptInfo.
	frameAccept byte = iota + 1
	// frameError carries a UTF-8 reason for refusing a handshake or for
	// closing a connection after a protocol error. The sender closes the
	// connection after writing it.
	frameError
	// frameMsg carries one encoded raft.Message (message connections only).
	frameMsg
	// frameSnapHeader starts a snapshot: uvarint total data length, then the
	// MsgSnap encoded with empty snapshot data (snapshot connections only).
	frameSnapHeader
	// frameSnapChunk carries the next bytes of the snapshot data.
	frameSnapChunk
)

// maxErrorText bounds the reason carried by a frameError.
const maxErrorText = 1024

// frameTypeName names t for error messages.
func frameTypeName(t byte) string {
	switch t {
	case frameAccept:
		return "accept"
	case frameError:
		return "error"
	case frameMsg:
		return "message"
	case frameSnapHeader:
		return "snapshot header"
	case frameSnapChunk:
		return "snapshot chunk"
	}
	return fmt.Sprintf("unknown(%d)", t)
}

// appendFrameHeader appends the header of a frame of type typ whose payload
// is n bytes long.
func appendFrameHeader(dst []byte, typ byte, n int) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	return append(dst, typ)
}

// frameReader reads frames from r, refusing any longer than max.
type frameReader struct {
	r   io.Reader
	max int
	hdr [frameHeaderLen]byte
}

// next reads the header of the next frame and returns its type and payload
// length, which it has checked against the limit. A clean end of input
// before the header is io.EOF; an end inside it is io.ErrUnexpectedEOF.
func (fr *frameReader) next() (typ byte, n int, err error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return 0, 0, err
	}
	length := binary.BigEndian.Uint32(fr.hdr[:4])
	typ = fr.hdr[4]
	if uint64(length) > uint64(fr.max) {
		return typ, 0, fmt.Errorf("%w: %s frame of %d bytes, limit %d", ErrFrameTooLarge, frameTypeName(typ), length, fr.max)
	}
	return typ, int(length), nil
}

// payload reads the n payload bytes announced by next into a new slice.
func (fr *frameReader) payload(n int) ([]byte, error) {
	p := make([]byte, n)
	if _, err := io.ReadFull(fr.r, p); err != nil {
		return nil, truncated(err)
	}
	return p, nil
}

// truncated turns an early end of input inside a frame into
// io.ErrUnexpectedEOF.
func truncated(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// errorFrame returns a complete frameError carrying reason, cut to
// maxErrorText bytes at a rune boundary.
func errorFrame(reason string) []byte {
	if len(reason) > maxErrorText {
		reason = reason[:maxErrorText]
		for !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	b := appendFrameHeader(make([]byte, 0, frameHeaderLen+len(reason)), frameError, len(reason))
	return append(b, reason...)
}

// messageFrame returns a complete frameMsg holding m, or ErrMessageTooLarge
// if m's encoding exceeds max bytes.
func messageFrame(m *raft.Message, max int) ([]byte, error) {
	n := messageSize(m)
	if n > max {
		return nil, fmt.Errorf("%w: %s of %d bytes, limit %d", ErrMessageTooLarge, m.Type, n, max)
	}
	b := appendFrameHeader(make([]byte, 0, frameHeaderLen+n), frameMsg, n)
	return appendMessage(b, m), nil
}
