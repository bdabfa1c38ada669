package kv

import (
	"encoding/binary"
	"fmt"
)

// appendBytes appends b to dst with a uvarint length prefix.
func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// reader decodes the fields of one encoded message. The first failure is
// kept in err (wrapping ErrMalformed or a size sentinel) and later reads
// return zero values, so a decoder checks err once at the end.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// byte1 reads one byte named field.
func (r *reader) byte1(field string) byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail(fmt.Errorf("%w: truncated before %s", ErrMalformed, field))
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// uvarint reads a uvarint named field.
func (r *reader) uvarint(field string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(fmt.Errorf("%w: bad or truncated varint in %s", ErrMalformed, field))
		return 0
	}
	// Only the shortest encoding is accepted (its last byte is not zero),
	// so that every accepted message has exactly one encoding.
	if n > 1 && r.b[n-1] == 0 {
		r.fail(fmt.Errorf("%w: over-long varint in %s", ErrMalformed, field))
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes reads a length-prefixed byte string named field of at most max
// bytes; tooLarge is the sentinel an over-long length wraps. The length is
// checked against max and against the remaining input before anything is
// sliced, and the result aliases the input (nil when empty).
func (r *reader) bytes(field string, max int, tooLarge error) []byte {
	n := r.uvarint(field + " length")
	if r.err != nil {
		return nil
	}
	if n > uint64(max) {
		r.fail(fmt.Errorf("%w: %s is %d bytes; the limit is %d", tooLarge, field, n, max))
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail(fmt.Errorf("%w: %s is %d bytes but only %d remain", ErrMalformed, field, n, len(r.b)))
		return nil
	}
	if n == 0 {
		return nil
	}
	b := r.b[:n:n]
	r.b = r.b[n:]
	return b
}

// end fails unless all input was consumed.
func (r *reader) end(what string) {
	if r.err == nil && len(r.b) != 0 {
		r.fail(fmt.Errorf("%w: %d trailing bytes after %s", ErrMalformed, len(r.b), what))
	}
}
