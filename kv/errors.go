package kv

import (
	"errors"
	"strings"
)

// Sentinel errors. Errors returned by this package wrap one of them (test
// with errors.Is) and name the field and the sizes involved. A Result's Err
// string begins with the message of one of them; Result.AsError maps it back.
var (
	// ErrInvalidCommand is wrapped by the error for a command whose fields
	// break the rules of its Op (a field the Op does not use, an empty Key,
	// contradicting CAS modes, an out-of-range Limit).
	ErrInvalidCommand = errors.New("kv: invalid command")
	// ErrKeyTooLarge is wrapped by the error for a Key or End longer than
	// MaxKeyBytes. Use a shorter key.
	ErrKeyTooLarge = errors.New("kv: key too large")
	// ErrValueTooLarge is wrapped by the error for a Value or Expect longer
	// than MaxValueBytes, and for an Append whose result would be.
	// Split the value over several keys.
	ErrValueTooLarge = errors.New("kv: value too large")
	// ErrMalformed is wrapped by the error for bytes that are not a valid
	// encoded command or result (truncated, oversized, unknown format).
	ErrMalformed = errors.New("kv: malformed encoding")
	// ErrCorruptSnapshot is wrapped by the error Restore returns for data
	// that is not an intact snapshot. The store is left unchanged; fetch the
	// snapshot again from a peer.
	ErrCorruptSnapshot = errors.New("kv: corrupt snapshot")
)

var sentinels = []error{ErrInvalidCommand, ErrKeyTooLarge, ErrValueTooLarge, ErrMalformed, ErrCorruptSnapshot}

// resultError is an Err string carried by a Result, turned back into an
// error that matches the sentinel it was made from.
type resultError struct {
	msg      string
	sentinel error // nil when the message matches no sentinel
}

func (e *resultError) Error() string { return e.msg }
func (e *resultError) Unwrap() error { return e.sentinel }

// AsError returns nil when r.Err is empty, and otherwise an error with
// message r.Err. When r.Err begins with the message of one of this package's
// sentinel errors, errors.Is matches that sentinel, so a client can tell,
// for example, ErrKeyTooLarge apart from other failures.
func (r Result) AsError() error {
	if r.Err == "" {
		return nil
	}
	e := &resultError{msg: r.Err}
	for _, s := range sentinels {
		if strings.HasPrefix(r.Err, s.Error()) {
			e.sentinel = s
			break
		}
	}
	return e
}
