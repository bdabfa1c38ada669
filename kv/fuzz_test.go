package kv

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecodeCommand checks that DecodeCommand never panics, that what it
// accepts re-encodes to an equal command, and that Apply of any input
// either applies a valid command or changes nothing.
func FuzzDecodeCommand(f *testing.F) {
	for _, c := range []Command{
		put("a", "1"), get("a"),
		{Op: OpDelete, Key: []byte("a")},
		{Op: OpAppend, Key: []byte("a"), Value: []byte("2")},
		{Op: OpCAS, Key: []byte("a"), Value: []byte("3"), Expect: []byte("1")},
		{Op: OpCAS, Key: []byte("a"), ExpectByVersion: true, ExpectVersion: 1},
		{Op: OpRange, Key: []byte("a"), End: []byte("z"), Limit: 3},
		{Op: OpRange, Key: []byte("a"), Prefix: true},
	} {
		f.Add(mustEncode(f, c))
	}
	f.Add([]byte{1, byte(OpGet), 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		s := NewStore()
		s.Apply(1, mustEncode(t, put("a", "1")))
		h := s.Hash()
		r, rerr := DecodeResult(s.Apply(2, b))
		if rerr != nil {
			t.Fatalf("DecodeResult(Apply): %v", rerr)
		}
		if err != nil {
			if c.Op != 0 || r.Err != err.Error() || s.Hash() != h {
				t.Fatalf("rejected command: Apply result %+v, error %v, hash changed %v", r, err, s.Hash() != h)
			}
			return
		}
		again, err := DecodeCommand(mustEncode(t, c))
		if err != nil {
			t.Fatalf("re-decoding an accepted command: %v", err)
		}
		if d := cmp.Diff(c, again, equateEmpty); d != "" {
			t.Fatalf("round trip (-first +second):\n%s", d)
		}
		if r.Err != "" {
			t.Fatalf("valid command %+v failed: %s", c, r.Err)
		}
	})
}

// FuzzDecodeResult checks that DecodeResult never panics and that what it
// accepts round-trips.
func FuzzDecodeResult(f *testing.F) {
	f.Add(EncodeResult(Result{Found: true, Value: []byte("v"), Version: 3}))
	f.Add(EncodeResult(Result{KVs: []KeyValue{kv("a", "1", 1), kv("b", "", 2)}, More: true}))
	f.Add(EncodeResult(Result{Err: "kv: key too large"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeResult(b)
		if err != nil {
			return
		}
		again, err := DecodeResult(EncodeResult(r))
		if err != nil {
			t.Fatalf("re-decoding an accepted result: %v", err)
		}
		if d := cmp.Diff(r, again, equateEmpty); d != "" {
			t.Fatalf("round trip (-first +second):\n%s", d)
		}
	})
}

// FuzzRestore checks that Restore never panics, that a rejected image
// leaves the store unchanged, and that an accepted one snapshots back to
// the same bytes. The checksum is recomputed over the fuzzed body (seal),
// so the fuzzer also reaches the structural checks behind it.
func FuzzRestore(f *testing.F) {
	a := NewStore()
	a.Apply(1, mustEncode(f, put("a", "1")))
	a.Apply(2, mustEncode(f, put("b", "")))
	good, _ := a.Snapshot()
	empty, _ := NewStore().Snapshot()
	f.Add(good, false)
	f.Add(good[:len(good)-snapCRC], true)
	f.Add(empty, false)
	f.Fuzz(func(t *testing.T, data []byte, seal bool) {
		if seal {
			data = reseal(append(data, 0, 0, 0, 0))
		}
		s := NewStore()
		s.Apply(7, mustEncode(t, put("keep", "me")))
		h := s.Hash()
		if err := s.Restore(data); err != nil {
			if !errors.Is(err, ErrCorruptSnapshot) || s.Hash() != h || s.Applied() != 7 {
				t.Fatalf("failed Restore (%v) changed the store", err)
			}
			return
		}
		snap, err := s.Snapshot()
		if err != nil || string(snap) != string(data) {
			t.Fatalf("accepted image does not snapshot back to itself (err %v)", err)
		}
	})
}
