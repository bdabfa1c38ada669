package rsm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Limits on the envelope encoding.
const (
	// MaxCmdBytes bounds Envelope.Cmd. DecodeEnvelope rejects a longer one
	// (and so Machine.Apply answers it with an ErrMalformedEnvelope result).
	MaxCmdBytes = 4 << 20
	// envFormat is the first byte of every encoded envelope.
	envFormat = 1
	// envHeader is format(1) ClientID(8) Seq(8) Now(8) len(Cmd)(4).
	envHeader = 1 + 8 + 8 + 8 + 4
	// MaxEnvelopeBytes bounds an encoded envelope: the header and at most
	// MaxCmdBytes of command.
	MaxEnvelopeBytes = envHeader + MaxCmdBytes
)

// Sentinel errors. Errors from this package wrap one of them (test with
// errors.Is) and say what was wrong.
var (
	// ErrMalformedEnvelope is wrapped by the error for bytes that are not a
	// valid encoded Envelope (truncated, trailing bytes, unknown format, a
	// Cmd over MaxCmdBytes). Encode commands with EncodeEnvelope.
	ErrMalformedEnvelope = errors.New("rsm: malformed envelope")
	// ErrStaleSequence is wrapped by the error for a command whose Seq is
	// below the last Seq its session applied: an old duplicate, not
	// applied. A client sees it only if it reuses a sequence number it
	// gave up on; it should move on to a new Seq.
	ErrStaleSequence = errors.New("rsm: stale sequence")
	// ErrMalformedResult is wrapped by the error DecodeResult returns for
	// bytes that are not a result produced by a Machine.
	ErrMalformedResult = errors.New("rsm: malformed result")
	// ErrCorruptSnapshot is wrapped by the error Restore returns for data
	// that is not an intact snapshot. The Machine is left unchanged; fetch
	// the snapshot again from a peer.
	ErrCorruptSnapshot = errors.New("rsm: corrupt snapshot")
)

// Envelope is what clients propose: an application command tagged with
// the client's session.
type Envelope struct {
	// ClientID names the client's session; 0 means no session: the command
	// is applied every time it is committed, with no deduplication.
	// Clients choose IDs that are unique among live clients (random 64-bit
	// values are fine).
	ClientID uint64
	// Seq is the client's sequence number for this command. A client uses
	// each number for one command (and its retries) and increases it for
	// the next; it may skip numbers. Ignored when ClientID is 0.
	Seq uint64
	// Now is the proposer's wall clock in Unix milliseconds. It is used
	// only to expire idle sessions, and is deterministic because it is in
	// the log. A clock that is behind only delays expiry; one far ahead
	// expires sessions early (see docs/rsm.md).
	Now int64
	// Cmd is the application command handed to App.Apply; at most
	// MaxCmdBytes.
	Cmd []byte
}

// EncodeEnvelope returns the encoding of e:
//
//	format(1)=1 ClientID(8) Seq(8) Now(8) len(Cmd)(4) Cmd
//
// with integers little-endian (Now as two's complement). The encoding is
// canonical: DecodeEnvelope accepts exactly the outputs of EncodeEnvelope.
// EncodeEnvelope does not check the size of Cmd; an envelope whose Cmd
// exceeds MaxCmdBytes fails to decode, and is answered with an
// ErrMalformedEnvelope result.
func EncodeEnvelope(e Envelope) []byte {
	b := make([]byte, 0, envHeader+len(e.Cmd))
	b = append(b, envFormat)
	b = binary.LittleEndian.AppendUint64(b, e.ClientID)
	b = binary.LittleEndian.AppendUint64(b, e.Seq)
	b = binary.LittleEndian.AppendUint64(b, uint64(e.Now))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(e.Cmd)))
	return append(b, e.Cmd...)
}

// DecodeEnvelope parses an encoded Envelope. The returned Cmd aliases b
// (it is not copied); a nil or empty Cmd decodes as an empty, non-nil
// slice of b. Errors wrap ErrMalformedEnvelope.
func DecodeEnvelope(b []byte) (Envelope, error) {
	if len(b) < envHeader {
		return Envelope{}, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrMalformedEnvelope, len(b), envHeader)
	}
	if b[0] != envFormat {
		return Envelope{}, fmt.Errorf("%w: unknown format %d (want %d)", ErrMalformedEnvelope, b[0], envFormat)
	}
	n := uint64(binary.LittleEndian.Uint32(b[25:29]))
	if n > MaxCmdBytes {
		return Envelope{}, fmt.Errorf("%w: command of %d bytes exceeds MaxCmdBytes (%d)", ErrMalformedEnvelope, n, MaxCmdBytes)
	}
	if rest := uint64(len(b) - envHeader); rest != n {
		return Envelope{}, fmt.Errorf("%w: command length %d but %d bytes follow the header", ErrMalformedEnvelope, n, rest)
	}
	return Envelope{
		ClientID: binary.LittleEndian.Uint64(b[1:9]),
		Seq:      binary.LittleEndian.Uint64(b[9:17]),
		Now:      int64(binary.LittleEndian.Uint64(b[17:25])),
		Cmd:      b[envHeader:len(b):len(b)],
	}, nil
}
