package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSnapshotRoundTrip(t *testing.T) {
	a := newApplier(t)
	a.do(put("b", "2"))
	a.do(put("a", ""))
	a.do(Command{Op: OpAppend, Key: []byte("\x00\xff"), Value: []byte("x")})
	a.do(Command{Op: OpDelete, Key: []byte("b")})
	snap, err := a.s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	s2 := NewStore()
	if err := s2.Restore(snap); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if d := cmp.Diff(contents(a.s), contents(s2), equateEmpty); d != "" {
		t.Errorf("restored contents (-want +got):\n%s", d)
	}
	if s2.Hash() != a.s.Hash() || s2.Applied() != 4 || s2.Len() != 2 {
		t.Errorf("restored Hash/Applied/Len = %x/%d/%d, want %x/4/2", s2.Hash(), s2.Applied(), s2.Len(), a.s.Hash())
	}
	again, _ := s2.Snapshot()
	if !bytes.Equal(snap, again) {
		t.Errorf("snapshot of a restored store differs from the original")
	}
	// Restoring into a non-empty store replaces everything.
	b := newApplier(t)
	b.do(put("zzz", "gone"))
	if err := b.s.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.s.Get([]byte("zzz")); ok || b.s.Hash() != a.s.Hash() {
		t.Errorf("Restore did not replace the old contents")
	}
}

// TestSnapshotIsolation checks that writes after Snapshot returns, and
// between the tree clone and encoding, do not show in the image.
func TestSnapshotIsolation(t *testing.T) {
	a := newApplier(t)
	a.do(put("a", "1"))
	snap, _ := a.s.Snapshot()
	a.do(put("a", "2"))
	a.do(put("b", "3"))
	s2 := NewStore()
	if err := s2.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if kv, _ := s2.Get([]byte("a")); string(kv.Value) != "1" || s2.Len() != 1 {
		t.Errorf("snapshot saw later writes: a=%q, Len %d", kv.Value, s2.Len())
	}
}

// TestHashIndependentOfHistory builds the same contents two ways.
func TestHashIndependentOfHistory(t *testing.T) {
	s1, s2 := NewStore(), NewStore()
	enc := func(c Command) []byte { b, _ := EncodeCommand(c); return b }
	s1.Apply(1, enc(put("x", "0")))
	s1.Apply(2, enc(put("a", "1")))
	s1.Apply(3, enc(Command{Op: OpDelete, Key: []byte("x")}))
	s1.Apply(4, enc(put("b", "2")))
	s2.Apply(2, enc(put("a", "1")))
	s2.Apply(3, enc(put("b", "9")))
	s2.Apply(4, enc(put("b", "2")))
	if s1.Hash() != s2.Hash() {
		t.Errorf("same contents, different Hash: %x vs %x", s1.Hash(), s2.Hash())
	}
	p1, _ := s1.Snapshot()
	p2, _ := s2.Snapshot()
	if !bytes.Equal(p1, p2) {
		t.Errorf("same contents and applied index, different snapshots")
	}
	s2.Apply(5, enc(put("b", "2"))) // same value, new version
	if s1.Hash() == s2.Hash() {
		t.Errorf("Hash ignores versions")
	}
	if NewStore().Hash() == s1.Hash() {
		t.Errorf("Hash of an empty store equals a non-empty one")
	}
}

// reseal recomputes the checksum of a hand-edited image.
func reseal(b []byte) []byte {
	body := b[:len(b)-snapCRC]
	return binary.LittleEndian.AppendUint32(append([]byte(nil), body...), crc32.Checksum(body, castagnoli))
}

// image builds a sealed snapshot from raw parts.
func image(applied, count uint64, entries ...[]byte) []byte {
	b := append([]byte(snapMagic), snapFormat)
	b = binary.LittleEndian.AppendUint64(b, applied)
	b = binary.LittleEndian.AppendUint64(b, count)
	for _, e := range entries {
		b = append(b, e...)
	}
	return reseal(append(b, 0, 0, 0, 0))
}

func rec(key, value string, version uint64) []byte {
	b := appendBytes(nil, []byte(key))
	b = appendBytes(b, []byte(value))
	return binary.AppendUvarint(b, version)
}

func TestRestoreCorrupt(t *testing.T) {
	a := newApplier(t)
	a.do(put("a", "1"))
	a.do(put("b", "2"))
	good, _ := a.s.Snapshot()
	tests := []struct {
		name string
		data []byte
		msg  string
	}{
		{"empty", nil, "shorter"},
		{"truncated", good[:len(good)-1], "checksum"},
		{"magic", reseal(append([]byte("XKVS"), good[4:]...)), "not a kv snapshot"},
		{"format", reseal(append(append([]byte(snapMagic), 2), good[5:]...)), "not a kv snapshot"},
		{"count lie", image(9, 1<<40, rec("a", "1", 1)), "cannot fit"},
		{"count short", image(9, 1, rec("a", "1", 1), rec("b", "1", 1)), "trailing"},
		{"count long", image(9, 2, rec("a", "1", 1), []byte{0, 0, 0}), "key 1 is empty"},
		{"unsorted", image(9, 2, rec("b", "1", 1), rec("a", "1", 1)), "not after"},
		{"duplicate", image(9, 2, rec("a", "1", 1), rec("a", "1", 1)), "not after"},
		{"version zero", image(9, 1, rec("a", "1", 0)), "version 0"},
		{"version future", image(9, 1, rec("a", "1", 10)), "outside [1, 9]"},
		{"key too large", image(9, 1, rec(strings.Repeat("k", MaxKeyBytes+1), "", 1)), "key too large"},
		{"value past end", image(9, 1, []byte{1, 'a', 100, 'v'}), "only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStore()
			s.Apply(1, mustEncode(t, put("keep", "me")))
			h := s.Hash()
			err := s.Restore(tt.data)
			if !errors.Is(err, ErrCorruptSnapshot) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Restore() = %v, want ErrCorruptSnapshot containing %q", err, tt.msg)
			}
			if s.Hash() != h || s.Applied() != 1 {
				t.Errorf("failed Restore changed the store")
			}
		})
	}
	// Every single-bit flip is caught.
	for i := range good {
		bad := append([]byte(nil), good...)
		bad[i] ^= 0x10
		if err := NewStore().Restore(bad); !errors.Is(err, ErrCorruptSnapshot) {
			t.Errorf("bit flip at byte %d: Restore() = %v", i, err)
		}
	}
}

// fataler is the part of testing.TB and *rapid.T that mustEncode needs.
type fataler interface {
	Helper()
	Fatal(args ...any)
}

func mustEncode(t fataler, c Command) []byte {
	t.Helper()
	b, err := EncodeCommand(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConcurrentReads runs Snapshot, Get, Hash and Len while Apply writes;
// run with -race. Every image restores to a consistent store.
func TestConcurrentReads(t *testing.T) {
	s := NewStore()
	var cmds [][]byte
	for i := range 500 {
		cmds = append(cmds, mustEncode(t, put(string(rune('a'+i%26)), strings.Repeat("v", i%7))))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i, cmd := range cmds {
			s.Apply(uint64(i+1), cmd)
		}
	}()
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		snap, _ := s.Snapshot()
		s.Get([]byte("a"))
		_, _ = s.Hash(), s.Len()
		if err := NewStore().Restore(snap); err != nil {
			t.Fatalf("image taken during Apply does not restore: %v", err)
		}
	}
}
