package rsm

import (
	"fmt"
	"unicode/utf8"
)

// Result status bytes: the first byte of every result a Machine returns.
const (
	// statusOK: the payload is the App's result (applied now, or
	// remembered from the first time for a retry).
	statusOK = iota + 1
	// statusStale: the payload is an error message wrapping
	// ErrStaleSequence; nothing was applied.
	statusStale
	// statusMalformed: the payload is an error message wrapping
	// ErrMalformedEnvelope; nothing was applied.
	statusMalformed
)

// maxErrBytes bounds the message of an error result; longer messages are
// truncated (at a UTF-8 boundary).
const maxErrBytes = 1 << 10

// okResult returns the encoding of a successful App result.
func okResult(payload []byte) []byte {
	b := make([]byte, 0, 1+len(payload))
	return append(append(b, statusOK), payload...)
}

// errResult returns the encoding of an error result with the given status.
func errResult(status byte, err error) []byte {
	msg := err.Error()
	if len(msg) > maxErrBytes {
		msg = msg[:maxErrBytes]
		for len(msg) > 0 && !utf8.ValidString(msg) {
			msg = msg[:len(msg)-1]
		}
	}
	b := make([]byte, 0, 1+len(msg))
	return append(append(b, status), msg...)
}

// DecodeResult decodes a result returned by Machine.Apply (the bytes
// node.Propose returns). For a command that was applied, or a retry of one,
// it returns the App's result as payload, aliasing b. Otherwise payload is
// nil and err wraps ErrStaleSequence or ErrMalformedEnvelope and carries the
// Machine's message; for bytes that are not a result, err wraps
// ErrMalformedResult.
func DecodeResult(b []byte) (payload []byte, err error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMalformedResult)
	}
	msg := string(b[1:])
	switch b[0] {
	case statusOK:
		return b[1:len(b):len(b)], nil
	case statusStale:
		return nil, &resultError{sentinel: ErrStaleSequence, msg: msg}
	case statusMalformed:
		return nil, &resultError{sentinel: ErrMalformedEnvelope, msg: msg}
	default:
		return nil, fmt.Errorf("%w: unknown status %d", ErrMalformedResult, b[0])
	}
}

// resultError is an error carried by a result: the Machine's message,
// matching (with errors.Is) the sentinel its status names.
type resultError struct {
	sentinel error
	msg      string
}

// Error returns the Machine's message.
func (e *resultError) Error() string {
	if e.msg == "" {
		return e.sentinel.Error()
	}
	return e.msg
}

// Unwrap returns the sentinel, so errors.Is matches it.
func (e *resultError) Unwrap() error { return e.sentinel }
