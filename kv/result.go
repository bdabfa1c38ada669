package kv

import (
	"encoding/binary"
	"fmt"
)

const (
	// MaxRangeBytes bounds the key and value bytes of one Range result:
	// a Range stops (with More set) before the key that would exceed it,
	// but always returns at least one key if any is in range.
	MaxRangeBytes = 2 << 20
	// MaxErrBytes bounds Result.Err; EncodeResult truncates a longer one.
	MaxErrBytes = 1 << 10
	// MaxResultBytes bounds an encoded Result. Every Result the Store
	// produces encodes to less, which also keeps it under gRPC's default
	// 4 MiB message limit.
	MaxResultBytes = 3 << 20
)

// resFormat is the first byte of every encoded result.
const resFormat = 1

// Result flag bits (second byte of the encoding).
const (
	flagFound = 1 << iota
	flagSwapped
	flagMore
	resFlagsKnown = flagFound | flagSwapped | flagMore
)

// KeyValue is one key with its value and version.
type KeyValue struct {
	// Key is the key; never empty.
	Key []byte
	// Value is the key's value; may be empty.
	Value []byte
	// Version is the log index of the key's last write (Put, Append or a
	// successful CAS); at least 1.
	Version uint64
}

// Result is the outcome of one applied Command. Which fields are set
// depends on the Op:
//
//	Op      Found                 Value            Version               other
//	Get     key exists            its value        its version
//	Put     key existed before                     the new version
//	Delete  key existed before                     the deleted version
//	Append  key existed before                     the new version
//	CAS     key existed before    current value    new or current        Swapped
//	        (current, on failure)  on failure only
//	Range                                                                KVs, More
//
// A command that could not be applied has only Err set.
type Result struct {
	// Found reports whether the key existed when the command was applied
	// (for CAS, before a swap).
	Found bool
	// Value is the value read by Get, or the current value after a failed
	// CAS. Empty for the other Ops.
	Value []byte
	// Version is the key's version as listed above; 0 when absent.
	Version uint64
	// Swapped reports whether a CAS wrote Value.
	Swapped bool
	// KVs are the keys of a Range in byte order.
	KVs []KeyValue
	// More reports that a Range stopped at Limit or MaxRangeBytes while
	// keys remained in range; continue from just after the last key.
	More bool
	// Err, when not empty, says why the command was not applied, for
	// example "kv: key too large: Key is 5000 bytes; the limit is 4096".
	// It begins with the message of a sentinel error; see AsError.
	Err string
}

// EncodeResult returns the compact binary encoding of r:
//
//	format(1)=1 flags(1) value version err count (key value version)*
//
// where each byte string is a uvarint length and the bytes, and version
// and count are uvarints. Err is truncated to MaxErrBytes. A Result the
// Store produced always decodes; an arbitrary one may exceed the decoder's
// limits.
func EncodeResult(r Result) []byte {
	var flags byte
	if r.Found {
		flags |= flagFound
	}
	if r.Swapped {
		flags |= flagSwapped
	}
	if r.More {
		flags |= flagMore
	}
	errMsg := r.Err
	if len(errMsg) > MaxErrBytes {
		errMsg = errMsg[:MaxErrBytes]
	}
	n := 2 + len(r.Value) + len(errMsg) + 40
	for _, kv := range r.KVs {
		n += len(kv.Key) + len(kv.Value) + 20
	}
	b := append(make([]byte, 0, n), resFormat, flags)
	b = appendBytes(b, r.Value)
	b = binary.AppendUvarint(b, r.Version)
	b = appendBytes(b, []byte(errMsg))
	b = binary.AppendUvarint(b, uint64(len(r.KVs)))
	for _, kv := range r.KVs {
		b = appendBytes(b, kv.Key)
		b = appendBytes(b, kv.Value)
		b = binary.AppendUvarint(b, kv.Version)
	}
	return b
}

// DecodeResult decodes an encoding made by EncodeResult. The byte slices
// of the result alias b. Input longer than MaxResultBytes, a field over its
// limit, or more than MaxRangeLimit KVs are rejected before allocating.
func DecodeResult(b []byte) (Result, error) {
	if len(b) > MaxResultBytes {
		return Result{}, fmt.Errorf("%w: result is %d bytes; the limit is %d (MaxResultBytes)", ErrMalformed, len(b), MaxResultBytes)
	}
	r := reader{b: b}
	if f := r.byte1("format"); r.err == nil && f != resFormat {
		return Result{}, fmt.Errorf("%w: unknown result format %d", ErrMalformed, f)
	}
	flags := r.byte1("flags")
	if flags&^resFlagsKnown != 0 {
		r.fail(fmt.Errorf("%w: unknown result flags %#x", ErrMalformed, flags))
	}
	res := Result{Found: flags&flagFound != 0, Swapped: flags&flagSwapped != 0, More: flags&flagMore != 0}
	res.Value = r.bytes("Value", MaxValueBytes, ErrValueTooLarge)
	res.Version = r.uvarint("Version")
	res.Err = string(r.bytes("Err", MaxErrBytes, ErrMalformed))
	n := r.uvarint("KVs count")
	// Each KeyValue takes at least 3 bytes, so n is checked against the
	// input left before the slice is allocated.
	if r.err == nil && (n > MaxRangeLimit || n > uint64(len(r.b)/3)) {
		r.fail(fmt.Errorf("%w: %d KVs in %d bytes; the limit is %d (MaxRangeLimit)", ErrMalformed, n, len(r.b), MaxRangeLimit))
	}
	if r.err == nil && n > 0 {
		res.KVs = make([]KeyValue, n)
		for i := range res.KVs {
			kv := &res.KVs[i]
			kv.Key = r.bytes("KVs.Key", MaxKeyBytes, ErrKeyTooLarge)
			kv.Value = r.bytes("KVs.Value", MaxValueBytes, ErrValueTooLarge)
			kv.Version = r.uvarint("KVs.Version")
		}
	}
	r.end("result")
	if r.err != nil {
		return Result{}, r.err
	}
	return res, nil
}
