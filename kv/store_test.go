package kv

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// applier applies commands at increasing indices and decodes the results.
type applier struct {
	t     *testing.T
	s     *Store
	index uint64
}

func newApplier(t *testing.T) *applier { return &applier{t: t, s: NewStore()} }

func (a *applier) do(c Command) Result {
	a.t.Helper()
	b, err := EncodeCommand(c)
	if err != nil {
		a.t.Fatalf("EncodeCommand(%+v): %v", c, err)
	}
	return a.raw(b)
}

func (a *applier) raw(cmd []byte) Result {
	a.t.Helper()
	a.index++
	r, err := DecodeResult(a.s.Apply(a.index, cmd))
	if err != nil {
		a.t.Fatalf("DecodeResult(Apply(%d)): %v", a.index, err)
	}
	return r
}

func put(k, v string) Command { return Command{Op: OpPut, Key: []byte(k), Value: []byte(v)} }
func get(k string) Command    { return Command{Op: OpGet, Key: []byte(k)} }
func kv(k, v string, ver uint64) KeyValue {
	return KeyValue{Key: []byte(k), Value: []byte(v), Version: ver}
}

// TestOps runs each table case on a store seeded with a=1 (index 1) and
// b=2 (index 2); the case's command applies at index 3.
func TestOps(t *testing.T) {
	tests := []struct {
		name  string
		c     Command
		want  Result
		after []KeyValue // contents afterwards
	}{
		{"get hit", get("a"), Result{Found: true, Value: []byte("1"), Version: 1}, nil},
		{"get miss", get("z"), Result{}, nil},
		{"put new", put("c", "3"), Result{Version: 3}, []KeyValue{kv("a", "1", 1), kv("b", "2", 2), kv("c", "3", 3)}},
		{"put overwrite", put("a", "x"), Result{Found: true, Version: 3}, []KeyValue{kv("a", "x", 3), kv("b", "2", 2)}},
		{"put empty value", put("a", ""), Result{Found: true, Version: 3}, []KeyValue{kv("a", "", 3), kv("b", "2", 2)}},
		{"delete hit", Command{Op: OpDelete, Key: []byte("a")}, Result{Found: true, Version: 1}, []KeyValue{kv("b", "2", 2)}},
		{"delete miss", Command{Op: OpDelete, Key: []byte("z")}, Result{}, nil},
		{"append existing", Command{Op: OpAppend, Key: []byte("a"), Value: []byte("+")}, Result{Found: true, Version: 3}, []KeyValue{kv("a", "1+", 3), kv("b", "2", 2)}},
		{"append creates", Command{Op: OpAppend, Key: []byte("c"), Value: []byte("+")}, Result{Version: 3}, []KeyValue{kv("a", "1", 1), kv("b", "2", 2), kv("c", "+", 3)}},
		{"cas value ok", Command{Op: OpCAS, Key: []byte("a"), Value: []byte("9"), Expect: []byte("1")}, Result{Found: true, Swapped: true, Version: 3}, []KeyValue{kv("a", "9", 3), kv("b", "2", 2)}},
		{"cas value fail", Command{Op: OpCAS, Key: []byte("a"), Value: []byte("9"), Expect: []byte("2")}, Result{Found: true, Value: []byte("1"), Version: 1}, nil},
		{"cas empty expect on absent", Command{Op: OpCAS, Key: []byte("z"), Value: []byte("9")}, Result{}, nil},
		{"cas version ok", Command{Op: OpCAS, Key: []byte("b"), Value: []byte("9"), ExpectByVersion: true, ExpectVersion: 2}, Result{Found: true, Swapped: true, Version: 3}, []KeyValue{kv("a", "1", 1), kv("b", "9", 3)}},
		{"cas version fail", Command{Op: OpCAS, Key: []byte("b"), Value: []byte("9"), ExpectByVersion: true, ExpectVersion: 1}, Result{Found: true, Value: []byte("2"), Version: 2}, nil},
		{"cas version 0 creates", Command{Op: OpCAS, Key: []byte("c"), Value: []byte("9"), ExpectByVersion: true}, Result{Swapped: true, Version: 3}, []KeyValue{kv("a", "1", 1), kv("b", "2", 2), kv("c", "9", 3)}},
		{"cas absent ok", Command{Op: OpCAS, Key: []byte("c"), Value: []byte("9"), ExpectAbsent: true}, Result{Swapped: true, Version: 3}, []KeyValue{kv("a", "1", 1), kv("b", "2", 2), kv("c", "9", 3)}},
		{"cas absent fail", Command{Op: OpCAS, Key: []byte("a"), Value: []byte("9"), ExpectAbsent: true}, Result{Found: true, Value: []byte("1"), Version: 1}, nil},
		{"range all", Command{Op: OpRange}, Result{KVs: []KeyValue{kv("a", "1", 1), kv("b", "2", 2)}}, nil},
		{"range half open", Command{Op: OpRange, Key: []byte("a"), End: []byte("b")}, Result{KVs: []KeyValue{kv("a", "1", 1)}}, nil},
		{"range from", Command{Op: OpRange, Key: []byte("b")}, Result{KVs: []KeyValue{kv("b", "2", 2)}}, nil},
		{"range empty interval", Command{Op: OpRange, Key: []byte("b"), End: []byte("a")}, Result{}, nil},
		{"range limit", Command{Op: OpRange, Limit: 1}, Result{KVs: []KeyValue{kv("a", "1", 1)}, More: true}, nil},
		{"range limit exact", Command{Op: OpRange, Limit: 2}, Result{KVs: []KeyValue{kv("a", "1", 1), kv("b", "2", 2)}}, nil},
		{"range prefix", Command{Op: OpRange, Key: []byte("b"), Prefix: true}, Result{KVs: []KeyValue{kv("b", "2", 2)}}, nil},
		{"range prefix none", Command{Op: OpRange, Key: []byte("ab"), Prefix: true}, Result{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newApplier(t)
			a.do(put("a", "1"))
			a.do(put("b", "2"))
			before := contents(a.s)
			got := a.do(tt.c)
			if d := cmp.Diff(tt.want, got, equateEmpty); d != "" {
				t.Errorf("result (-want +got):\n%s", d)
			}
			want := tt.after
			if want == nil {
				want = before
			}
			if d := cmp.Diff(want, contents(a.s), equateEmpty); d != "" {
				t.Errorf("contents (-want +got):\n%s", d)
			}
		})
	}
}

// contents lists the store's keys by walking the tree directly, so that it
// checks Range independently.
func contents(s *Store) []KeyValue {
	var out []KeyValue
	s.tree.Ascend(func(e entry) bool {
		out = append(out, KeyValue{Key: e.key, Value: e.value, Version: e.version})
		return true
	})
	return out
}

func TestRangePrefixEdges(t *testing.T) {
	a := newApplier(t)
	for _, k := range []string{"", "\x00", "p", "p\xff", "p\xff\xff", "q", "\xff", "\xff\xff"} {
		if k != "" {
			a.do(put(k, "v"))
		}
	}
	for prefix, want := range map[string][]string{
		"":      {"\x00", "p", "p\xff", "p\xff\xff", "q", "\xff", "\xff\xff"},
		"p":     {"p", "p\xff", "p\xff\xff"},
		"p\xff": {"p\xff", "p\xff\xff"},
		"\xff":  {"\xff", "\xff\xff"},
	} {
		r := a.do(Command{Op: OpRange, Key: []byte(prefix), Prefix: true})
		var got []string
		for _, kv := range r.KVs {
			got = append(got, string(kv.Key))
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("prefix %q (-want +got):\n%s", prefix, d)
		}
	}
}

func TestRangeByteBudget(t *testing.T) {
	a := newApplier(t)
	big := bytes.Repeat([]byte("v"), MaxRangeBytes/2-1<<10) // two fit, three do not
	for i := range 3 {
		a.do(Command{Op: OpPut, Key: fmt.Appendf(nil, "k%d", i), Value: big})
	}
	r := a.do(Command{Op: OpRange})
	if len(r.KVs) != 2 || !r.More {
		t.Fatalf("Range over 3 values of MaxRangeBytes/2: %d KVs, More=%v; want 2 and More", len(r.KVs), r.More)
	}
	if n := len(EncodeResult(r)); n > MaxResultBytes {
		t.Errorf("encoded Range result is %d bytes, over MaxResultBytes %d", n, MaxResultBytes)
	}
	r = a.do(Command{Op: OpRange, Key: []byte("k2")})
	if len(r.KVs) != 1 || r.More {
		t.Errorf("Range of one large key: %d KVs, More=%v; want 1, no More", len(r.KVs), r.More)
	}
}

func TestRangeLimitDefault(t *testing.T) {
	a := newApplier(t)
	for i := range MaxRangeLimit + 1 {
		a.do(put(fmt.Sprintf("k%04d", i), ""))
	}
	r := a.do(Command{Op: OpRange})
	if len(r.KVs) != MaxRangeLimit || !r.More || string(r.KVs[MaxRangeLimit-1].Key) != "k0999" {
		t.Errorf("default Range: %d KVs, More=%v; want %d and More", len(r.KVs), r.More, MaxRangeLimit)
	}
}

func TestAppendLimit(t *testing.T) {
	a := newApplier(t)
	a.do(Command{Op: OpPut, Key: []byte("k"), Value: bytes.Repeat([]byte("v"), MaxValueBytes-1)})
	if r := a.do(Command{Op: OpAppend, Key: []byte("k"), Value: []byte("1")}); r.Err != "" {
		t.Fatalf("Append to exactly MaxValueBytes: %s", r.Err)
	}
	h := a.s.Hash()
	r := a.do(Command{Op: OpAppend, Key: []byte("k"), Value: []byte("1")})
	if !errors.Is(r.AsError(), ErrValueTooLarge) || !strings.Contains(r.Err, "Append") {
		t.Errorf("Append past MaxValueBytes: Err %q, want ErrValueTooLarge", r.Err)
	}
	if kv, _ := a.s.Get([]byte("k")); len(kv.Value) != MaxValueBytes || kv.Version != 2 || a.s.Hash() != h {
		t.Errorf("failed Append changed the key: %d bytes, version %d", len(kv.Value), kv.Version)
	}
}

func TestApplyMalformedChangesNothing(t *testing.T) {
	a := newApplier(t)
	a.do(put("a", "1"))
	h, n := a.s.Hash(), a.s.Len()
	for _, cmd := range [][]byte{nil, {0}, {1, byte(OpPut), 0, 1, 'a'}, {1, byte(OpGet), 0, 0, 0, 0, 0, 0, 0}, {1, 99, 0, 1, 'a', 0, 0, 0, 0, 0}} {
		r := a.raw(cmd)
		if r.Err == "" || r.AsError() == nil || r.Found || r.Version != 0 {
			t.Errorf("Apply(%x) = %+v, want only Err set", cmd, r)
		}
	}
	if a.s.Hash() != h || a.s.Len() != n || a.s.Applied() != a.index {
		t.Errorf("malformed commands changed the store (or did not advance Applied)")
	}
}

func TestApplyDoesNotRetainCommand(t *testing.T) {
	s := NewStore()
	cmd, _ := EncodeCommand(put("key", "value"))
	s.Apply(1, cmd)
	for i := range cmd {
		cmd[i] = 'X'
	}
	if kv, ok := s.Get([]byte("key")); !ok || string(kv.Value) != "value" {
		t.Errorf("after overwriting the command buffer, Get = %q, %v", kv.Value, ok)
	}
}

func TestApplyIndexMustIncrease(t *testing.T) {
	for _, idx := range []uint64{0, 5, 4} {
		s := NewStore()
		cmd, _ := EncodeCommand(get("a"))
		if idx != 0 {
			s.Apply(5, cmd)
		}
		func() {
			defer func() {
				if msg, _ := recover().(string); !strings.Contains(msg, "not after the last applied index") {
					t.Errorf("Apply(%d) after 5 recovered %q, want a panic naming both indices", idx, msg)
				}
			}()
			s.Apply(idx, cmd)
		}()
	}
}

func TestGet(t *testing.T) {
	a := newApplier(t)
	a.do(put("a", "1"))
	if kv, ok := a.s.Get([]byte("a")); !ok || cmp.Diff(kv, KeyValue{Key: []byte("a"), Value: []byte("1"), Version: 1}) != "" {
		t.Errorf("Get(a) = %+v, %v", kv, ok)
	}
	if _, ok := a.s.Get([]byte("b")); ok {
		t.Errorf("Get(b) found a missing key")
	}
	if a.s.Len() != 1 || a.s.Applied() != 1 {
		t.Errorf("Len, Applied = %d, %d; want 1, 1", a.s.Len(), a.s.Applied())
	}
}

func TestPrefixEnd(t *testing.T) {
	for prefix, want := range map[string]string{"": "", "a": "b", "a\xff": "b", "\xff\xff": "", "ab\x00": "ab\x01"} {
		if got := string(PrefixEnd([]byte(prefix))); got != want {
			t.Errorf("PrefixEnd(%q) = %q, want %q", prefix, got, want)
		}
	}
	// Continuing a truncated prefix Range with PrefixEnd visits every key once.
	a := newApplier(t)
	for _, k := range []string{"o", "p", "p\x00", "pa", "pb", "p\xff", "q"} {
		a.do(put(k, ""))
	}
	var got []string
	c := Command{Op: OpRange, Key: []byte("p"), Prefix: true, Limit: 2}
	for {
		r := a.do(c)
		for _, kv := range r.KVs {
			got = append(got, string(kv.Key))
		}
		if !r.More {
			break
		}
		last := r.KVs[len(r.KVs)-1].Key
		c = Command{Op: OpRange, Key: append(append([]byte(nil), last...), 0), End: PrefixEnd([]byte("p")), Limit: 2}
	}
	if d := cmp.Diff([]string{"p", "p\x00", "pa", "pb", "p\xff"}, got); d != "" {
		t.Errorf("paged prefix Range (-want +got):\n%s", d)
	}
}

func TestReadMatchesApply(t *testing.T) {
	a := newApplier(t)
	for i := range 5 {
		a.do(Command{Op: OpPut, Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)})
	}
	for _, c := range []Command{
		{Op: OpGet, Key: []byte("k3")},
		{Op: OpGet, Key: []byte("missing")},
		{Op: OpRange, Key: []byte("k1"), End: []byte("k4")},
		{Op: OpRange, Key: []byte("k"), Prefix: true, Limit: 2},
	} {
		got, err := a.s.Read(c)
		if err != nil {
			t.Fatalf("Read(%v): %v", c.Op, err)
		}
		if d := cmp.Diff(a.do(c), got); d != "" {
			t.Errorf("Read(%v %q) differs from Apply (-apply +read):\n%s", c.Op, c.Key, d)
		}
	}
	if _, err := a.s.Read(Command{Op: OpPut, Key: []byte("k")}); !errors.Is(err, ErrInvalidCommand) {
		t.Errorf("Read(Put) = %v, want ErrInvalidCommand", err)
	}
	if _, err := a.s.Read(Command{Op: OpGet}); !errors.Is(err, ErrInvalidCommand) {
		t.Errorf("Read(Get with no key) = %v, want ErrInvalidCommand", err)
	}
}
