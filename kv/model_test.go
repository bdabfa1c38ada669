package kv

import (
	"bytes"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

// model is the naive oracle: a map, sorted on every Range.
type model map[string]KeyValue

func (m model) apply(index uint64, c Command) Result {
	cur, found := m[string(c.Key)]
	write := func(v []byte) {
		m[string(c.Key)] = KeyValue{Key: c.Key, Value: v, Version: index}
	}
	switch c.Op {
	case OpGet:
		return Result{Found: found, Value: cur.Value, Version: cur.Version}
	case OpPut:
		write(c.Value)
		return Result{Found: found, Version: index}
	case OpDelete:
		delete(m, string(c.Key))
		return Result{Found: found, Version: cur.Version}
	case OpAppend:
		write(append(slices.Clip(cur.Value), c.Value...))
		return Result{Found: found, Version: index}
	case OpCAS:
		ok := found && bytes.Equal(cur.Value, c.Expect)
		if c.ExpectAbsent {
			ok = !found
		} else if c.ExpectByVersion {
			ok = cur.Version == c.ExpectVersion
		}
		if !ok {
			return Result{Found: found, Value: cur.Value, Version: cur.Version}
		}
		write(c.Value)
		return Result{Found: found, Swapped: true, Version: index}
	case OpRange:
		return m.scan(c)
	}
	panic("model: unknown op")
}

func (m model) scan(c Command) Result {
	var in []KeyValue
	for k, kv := range m {
		if c.Prefix && strings.HasPrefix(k, string(c.Key)) ||
			!c.Prefix && k >= string(c.Key) && (len(c.End) == 0 || k < string(c.End)) {
			in = append(in, kv)
		}
	}
	sort.Slice(in, func(i, j int) bool { return string(in[i].Key) < string(in[j].Key) })
	limit := c.Limit
	if limit == 0 {
		limit = MaxRangeLimit
	}
	if len(in) > limit {
		return Result{KVs: in[:limit], More: true}
	}
	return Result{KVs: in}
}

func (m model) sorted() []KeyValue {
	return m.scan(Command{Op: OpRange}).KVs
}

var (
	genKey    = rapid.SampledFrom([]string{"a", "ab", "abc", "b", "ba", "c", "\x00", "\xff", "\xff\xff"})
	genAnyKey = rapid.SampledFrom([]string{"", "a", "ab", "b", "bz", "c", "\xff"})
	genValue  = rapid.SampledFrom([]string{"", "1", "2", "xy", "hello"})
)

// genCommand draws a valid command, biased so that CAS sometimes succeeds.
func genCommand(t *rapid.T, m model) Command {
	op := Op(rapid.IntRange(int(OpGet), int(OpRange)).Draw(t, "op"))
	c := Command{Op: op, Key: []byte(genKey.Draw(t, "key"))}
	switch op {
	case OpPut, OpAppend:
		c.Value = []byte(genValue.Draw(t, "value"))
	case OpCAS:
		c.Value = []byte(genValue.Draw(t, "value"))
		cur := m[string(c.Key)]
		switch rapid.IntRange(0, 3).Draw(t, "mode") {
		case 0:
			c.Expect = []byte(genValue.Draw(t, "expect"))
		case 1:
			c.Expect = cur.Value
		case 2:
			c.ExpectByVersion = true
			c.ExpectVersion = rapid.SampledFrom([]uint64{0, 1, cur.Version}).Draw(t, "expectVersion")
		case 3:
			c.ExpectAbsent = true
		}
	case OpRange:
		c.Key = []byte(genAnyKey.Draw(t, "start"))
		c.Limit = rapid.IntRange(0, 4).Draw(t, "limit")
		switch rapid.IntRange(0, 2).Draw(t, "rangeKind") {
		case 0:
			c.Prefix = true
		case 1:
			c.End = []byte(genAnyKey.Draw(t, "end"))
		case 2:
			c.End = PrefixEnd(c.Key) // the same keys as Prefix
		}
	}
	return c
}

// TestStoreMatchesModel applies random command sequences, with malformed
// commands and snapshot/restore round trips mixed in, to a Store and to
// the model, and compares every result, the contents and the Hash.
func TestStoreMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s, m := NewStore(), model{}
		n := rapid.IntRange(1, 60).Draw(t, "steps")
		for index := uint64(1); index <= uint64(n); index++ {
			switch rapid.IntRange(0, 9).Draw(t, "kind") {
			case 0: // snapshot, restore into a fresh store, continue there
				snap, err := s.Snapshot()
				if err != nil {
					t.Fatalf("Snapshot: %v", err)
				}
				s2 := NewStore()
				if err := s2.Restore(snap); err != nil {
					t.Fatalf("Restore: %v", err)
				}
				if s2.Hash() != s.Hash() || s2.Applied() != s.Applied() {
					t.Fatalf("restored store differs: Hash %x vs %x", s2.Hash(), s.Hash())
				}
				s = s2
				index--
				continue
			case 1: // a malformed command
				raw := rapid.SliceOfN(rapid.Byte(), 0, 12).Draw(t, "raw")
				if _, err := DecodeCommand(raw); err == nil {
					break // happens to be valid: apply it as a command below
				}
				h := s.Hash()
				r, err := DecodeResult(s.Apply(index, raw))
				if err != nil || r.Err == "" || s.Hash() != h {
					t.Fatalf("malformed %x: result %+v, err %v, hash changed %v", raw, r, err, s.Hash() != h)
				}
				continue
			}
			c := genCommand(t, m)
			got, err := DecodeResult(s.Apply(index, mustEncode(t, c)))
			if err != nil {
				t.Fatalf("DecodeResult: %v", err)
			}
			want := m.apply(index, c)
			if d := cmp.Diff(want, got, equateEmpty); d != "" {
				t.Fatalf("index %d %v %+v (-model +store):\n%s", index, c.Op, c, d)
			}
		}
		if d := cmp.Diff(m.sorted(), contents(s), equateEmpty); d != "" {
			t.Fatalf("contents (-model +store):\n%s", d)
		}
		if s.Len() != len(m) {
			t.Fatalf("Len %d, model %d", s.Len(), len(m))
		}
		checkHashFromContents(t, s, m)
	})
}

// checkHashFromContents rebuilds the model's contents with another
// history (one Put per key at its version, oldest first) and checks that
// the Hash agrees.
func checkHashFromContents(t *rapid.T, s *Store, m model) {
	kvs := m.sorted()
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].Version < kvs[j].Version })
	other := NewStore()
	for _, kv := range kvs {
		other.Apply(kv.Version, mustEncode(t, Command{Op: OpPut, Key: kv.Key, Value: kv.Value}))
	}
	if other.Hash() != s.Hash() {
		t.Fatalf("same contents, different history: Hash %x vs %x", other.Hash(), s.Hash())
	}
}
