package kv

import (
	"encoding/binary"
	"fmt"
)

// Limits of the encoding. Every encoder refuses, and every decoder rejects
// before allocating, anything larger. A server may impose lower limits
// before it proposes a command; it must not raise these.
const (
	// MaxKeyBytes bounds a Key and a Range End.
	MaxKeyBytes = 4 << 10
	// MaxValueBytes bounds a Value, a CAS Expect, Value and Expect of one
	// CAS together, and the value Append produces: 1 MiB.
	MaxValueBytes = 1 << 20
	// MaxCommandBytes bounds an encoded Command; a valid command is always
	// smaller. With the rsm session header it still fits one log entry
	// (node.MaxCommandBytes, 2 MiB).
	MaxCommandBytes = MaxValueBytes + 4*MaxKeyBytes
	// MaxRangeLimit is the default and the largest Command.Limit.
	MaxRangeLimit = 1000
)

// cmdFormat is the first byte of every encoded command.
const cmdFormat = 1

// Command flag bits (third byte of the encoding).
const (
	flagPrefix = 1 << iota
	flagExpectByVersion
	flagExpectAbsent
	cmdFlagsKnown = flagPrefix | flagExpectByVersion | flagExpectAbsent
)

// Op names a Command's operation.
type Op uint8

// The operations. The zero Op is invalid.
const (
	// OpGet reads Key.
	OpGet Op = iota + 1
	// OpPut sets Key to Value, creating or overwriting it.
	OpPut
	// OpDelete removes Key; deleting a missing key is not an error.
	OpDelete
	// OpAppend appends Value to Key's value, creating the key if missing.
	OpAppend
	// OpCAS sets Key to Value if Key's current state matches the
	// expectation (Expect, ExpectVersion or ExpectAbsent).
	OpCAS
	// OpRange reads the keys in [Key, End), or with Prefix every key that
	// begins with Key, in byte order, at most Limit of them.
	OpRange
	opEnd // one past the last Op
)

var opNames = [...]string{"invalid", "Get", "Put", "Delete", "Append", "CAS", "Range"}

// String returns the Op's name ("Put"), or "Op(n)" for an unknown Op.
func (o Op) String() string {
	if o < opEnd {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Command is one operation on the Store. Which fields an Op uses is listed
// on the Op constants; Validate rejects a command that sets any other field,
// so an encoded command round-trips exactly.
type Command struct {
	// Op is the operation; required.
	Op Op
	// Key is the key operated on (the start of a Range, inclusive, or the
	// prefix when Prefix is set). Required and at most MaxKeyBytes for all
	// Ops but Range, where empty means the first key.
	Key []byte
	// Value is the value written by Put, Append and CAS; at most
	// MaxValueBytes. Empty is a valid value.
	Value []byte
	// End is the exclusive end of a Range; empty means no upper bound. It
	// must be empty when Prefix is set. At most MaxKeyBytes.
	End []byte
	// Prefix makes a Range cover every key that begins with Key.
	Prefix bool
	// Limit bounds the keys a Range returns; 0 means MaxRangeLimit, which
	// is also the maximum. Negative is invalid.
	Limit int
	// Expect is the value a CAS expects (the default mode). It matches only
	// an existing key whose value equals it byte for byte; an absent key
	// never matches, not even an empty Expect.
	Expect []byte
	// ExpectVersion is the version a CAS expects when ExpectByVersion is
	// set. Version 0 is the version of an absent key. Must be 0 otherwise.
	ExpectVersion uint64
	// ExpectByVersion makes a CAS compare the key's version with
	// ExpectVersion instead of its value with Expect.
	ExpectByVersion bool
	// ExpectAbsent makes a CAS succeed only if the key does not exist
	// (create-if-absent). Exclusive with ExpectByVersion and Expect.
	ExpectAbsent bool
}

// invalid returns an ErrInvalidCommand error for c naming the problem.
func (c Command) invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %v: "+format, append([]any{ErrInvalidCommand, c.Op}, args...)...)
}

// Validate reports whether c is a command Apply accepts: a known Op, the
// fields that Op uses within their limits, and no other field set. The
// error wraps ErrInvalidCommand, ErrKeyTooLarge or ErrValueTooLarge and
// names the field.
func (c Command) Validate() error {
	if c.Op == 0 || c.Op >= opEnd {
		return fmt.Errorf("%w: unknown Op %d", ErrInvalidCommand, uint8(c.Op))
	}
	if err := c.checkSizes(); err != nil {
		return err
	}
	if len(c.Key) == 0 && c.Op != OpRange {
		return c.invalid("Key is empty")
	}
	if err := c.checkUnused(); err != nil {
		return err
	}
	switch c.Op {
	case OpCAS:
		return c.checkCAS()
	case OpRange:
		if c.Prefix && len(c.End) > 0 {
			return c.invalid("End must be empty when Prefix is set")
		}
		if c.Limit < 0 || c.Limit > MaxRangeLimit {
			return c.invalid("Limit is %d; it must be between 0 (default) and %d (MaxRangeLimit)", c.Limit, MaxRangeLimit)
		}
	}
	return nil
}

func (c Command) checkSizes() error {
	for _, f := range []struct {
		name string
		n    int
		max  int
		err  error
	}{
		{"Key", len(c.Key), MaxKeyBytes, ErrKeyTooLarge},
		{"End", len(c.End), MaxKeyBytes, ErrKeyTooLarge},
		{"Value", len(c.Value), MaxValueBytes, ErrValueTooLarge},
		{"Expect", len(c.Expect), MaxValueBytes, ErrValueTooLarge},
		{"Value+Expect", len(c.Value) + len(c.Expect), MaxValueBytes, ErrValueTooLarge},
	} {
		if f.n > f.max {
			return fmt.Errorf("%w: %s is %d bytes; the limit is %d", f.err, f.name, f.n, f.max)
		}
	}
	return nil
}

// checkUnused rejects fields c.Op does not use.
func (c Command) checkUnused() error {
	usesValue := c.Op == OpPut || c.Op == OpAppend || c.Op == OpCAS
	for _, f := range []struct {
		name     string
		set, use bool
	}{
		{"Value", len(c.Value) > 0, usesValue},
		{"End", len(c.End) > 0, c.Op == OpRange},
		{"Prefix", c.Prefix, c.Op == OpRange},
		{"Limit", c.Limit != 0, c.Op == OpRange},
		{"Expect", len(c.Expect) > 0, c.Op == OpCAS},
		{"ExpectVersion", c.ExpectVersion != 0, c.Op == OpCAS},
		{"ExpectByVersion", c.ExpectByVersion, c.Op == OpCAS},
		{"ExpectAbsent", c.ExpectAbsent, c.Op == OpCAS},
	} {
		if f.set && !f.use {
			return c.invalid("%s does not use %s", c.Op, f.name)
		}
	}
	return nil
}

func (c Command) checkCAS() error {
	switch {
	case c.ExpectByVersion && c.ExpectAbsent:
		return c.invalid("ExpectByVersion and ExpectAbsent are exclusive")
	case c.ExpectVersion != 0 && !c.ExpectByVersion:
		return c.invalid("ExpectVersion is set but ExpectByVersion is not")
	case len(c.Expect) > 0 && (c.ExpectByVersion || c.ExpectAbsent):
		return c.invalid("Expect is set together with ExpectByVersion or ExpectAbsent")
	}
	return nil
}

// EncodeCommand returns the compact binary encoding of c, after Validate:
//
//	format(1)=1 op(1) flags(1) key value end expect limit expectVersion
//
// where each byte string is a uvarint length and the bytes, and limit and
// expectVersion are uvarints. The result is at most MaxCommandBytes.
func EncodeCommand(c Command) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var flags byte
	if c.Prefix {
		flags |= flagPrefix
	}
	if c.ExpectByVersion {
		flags |= flagExpectByVersion
	}
	if c.ExpectAbsent {
		flags |= flagExpectAbsent
	}
	n := 3 + len(c.Key) + len(c.Value) + len(c.End) + len(c.Expect) + 4*3 + 2*10
	b := append(make([]byte, 0, n), cmdFormat, byte(c.Op), flags)
	b = appendBytes(b, c.Key)
	b = appendBytes(b, c.Value)
	b = appendBytes(b, c.End)
	b = appendBytes(b, c.Expect)
	b = binary.AppendUvarint(b, uint64(c.Limit))
	b = binary.AppendUvarint(b, c.ExpectVersion)
	return b, nil
}

// DecodeCommand decodes an encoding made by EncodeCommand and validates
// the command. The byte slices of the result alias b. Input longer than
// MaxCommandBytes, or with a field over its limit, is rejected before any
// allocation; the error names the field.
func DecodeCommand(b []byte) (Command, error) {
	if len(b) > MaxCommandBytes {
		return Command{}, fmt.Errorf("%w: command is %d bytes; the limit is %d (MaxCommandBytes)", ErrMalformed, len(b), MaxCommandBytes)
	}
	r := reader{b: b}
	if f := r.byte1("format"); r.err == nil && f != cmdFormat {
		return Command{}, fmt.Errorf("%w: unknown command format %d", ErrMalformed, f)
	}
	var c Command
	c.Op = Op(r.byte1("Op"))
	flags := r.byte1("flags")
	if flags&^cmdFlagsKnown != 0 {
		r.fail(fmt.Errorf("%w: unknown command flags %#x", ErrMalformed, flags))
	}
	c.Prefix = flags&flagPrefix != 0
	c.ExpectByVersion = flags&flagExpectByVersion != 0
	c.ExpectAbsent = flags&flagExpectAbsent != 0
	c.Key = r.bytes("Key", MaxKeyBytes, ErrKeyTooLarge)
	c.Value = r.bytes("Value", MaxValueBytes, ErrValueTooLarge)
	c.End = r.bytes("End", MaxKeyBytes, ErrKeyTooLarge)
	c.Expect = r.bytes("Expect", MaxValueBytes, ErrValueTooLarge)
	limit := r.uvarint("Limit")
	c.ExpectVersion = r.uvarint("ExpectVersion")
	r.end("command")
	if r.err != nil {
		return Command{}, r.err
	}
	if limit > MaxRangeLimit {
		return Command{}, c.invalid("Limit is %d; it must be between 0 (default) and %d (MaxRangeLimit)", limit, MaxRangeLimit)
	}
	c.Limit = int(limit)
	if err := c.Validate(); err != nil {
		return Command{}, err
	}
	return c, nil
}

// PrefixEnd returns the smallest key greater than every key that begins
// with prefix, or nil (no upper bound) when there is none (prefix is empty
// or all 0xff bytes). Range{Key: p, Prefix: true} covers the same keys as
// Range{Key: p, End: PrefixEnd(p)}; a client continues a truncated prefix
// Range with Range{Key: append(last, 0), End: PrefixEnd(p)}.
func PrefixEnd(prefix []byte) []byte {
	for i := len(prefix) - 1; i >= 0; i-- {
		if prefix[i] != 0xff {
			end := append([]byte(nil), prefix[:i+1]...)
			end[i]++
			return end
		}
	}
	return nil
}
