package nemesis

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Op is the kind of a client operation.
type Op int

// Operations of the history.
const (
	OpGet Op = iota + 1
	OpPut
	OpAppend
	OpCAS
	OpDelete
)

// Input is what a client asked for.
type Input struct {
	Op     Op
	Key    string
	Value  string // Put, Append, CAS: the new value or the appended token
	Expect string // CAS: the value expected
}

// Output is what a client was told. Unknown marks an operation whose
// outcome the client never learned (it timed out or failed): it may or may
// not have taken effect, at any time after its call.
type Output struct {
	Found   bool   // Get, CAS (when not swapped), Delete: the key existed
	Value   string // Get, CAS (when not swapped): the current value
	Swapped bool   // CAS
	Unknown bool

	// hash and length are Value's FNV-1a hash and length, set by
	// operations for the model, or by compact, which then keeps only
	// Value's last bytes (compacted is set).
	hash      uint64
	length    int
	compacted bool
}

// compact replaces a long Value by its hash, length and last bytes, so
// that a run's many reads of an append key (whose value grows to hundreds
// of kilobytes) do not hold every copy. The model needs only the hash and
// length; the timeline shows the last bytes.
func (o Output) compact() Output {
	if len(o.Value) <= 2*tailBytes || o.compacted {
		return o
	}
	o.hash, o.length, o.compacted = fnvExtend(fnvOffset, o.Value), len(o.Value), true
	o.Value = strings.Clone(o.Value[len(o.Value)-tailBytes:]) // not a reference to the whole value
	return o
}

// Event is one operation of the history. Call and Return are nanoseconds
// since the run started, on the monotonic clock; Return is math.MaxInt64
// for an operation with an unknown outcome.
type Event struct {
	Client       int
	In           Input
	Out          Output
	Call, Return int64
}

// history collects the events of all clients; safe for concurrent use.
type history struct {
	start time.Time
	mu    sync.Mutex
	ev    []Event // guarded by mu
}

func newHistory() *history { return &history{start: time.Now()} }

// now is the time since the run started, in nanoseconds.
func (h *history) now() int64 { return int64(time.Since(h.start)) }

func (h *history) add(e Event) {
	h.mu.Lock()
	h.ev = append(h.ev, e)
	h.mu.Unlock()
}

func (h *history) events() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ev)
}

// operations turns events into porcupine's form.
func operations(ev []Event) []porcupine.Operation {
	ops := make([]porcupine.Operation, 0, len(ev))
	for _, e := range ev {
		ret := e.Return
		if e.Out.Unknown {
			ret = math.MaxInt64
		}
		out := e.Out
		if !out.compacted {
			out.hash, out.length = fnvExtend(fnvOffset, out.Value), len(out.Value)
		}
		ops = append(ops, porcupine.Operation{ClientId: e.Client, Input: e.In, Call: e.Call, Output: out, Return: ret})
	}
	return ops
}

// keyState is the sequential specification's state of one key. It holds
// a value's length and 64-bit FNV-1a hash rather than the value, because
// an append key's value grows to hundreds of kilobytes and porcupine keeps
// many states: comparing a read with the state costs O(1) with the read's
// hash precomputed (operations), and an Append extends the hash with the
// appended bytes only. Two different values with the same length and hash
// would be confused; with 64 bits and at most millions of values per run,
// that chance is negligible. tail keeps the value's last bytes, for the
// timeline only.
type keyState struct {
	exists bool
	length int
	hash   uint64
	tail   string
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
	tailBytes = 40
)

// fnvExtend extends the FNV-1a hash h of some bytes with the bytes of s.
func fnvExtend(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func valueState(v string) keyState {
	return keyState{exists: true, length: len(v), hash: fnvExtend(fnvOffset, v), tail: v[len(v)-min(len(v), tailBytes):]}
}

func (st keyState) appended(v string) keyState {
	if !st.exists {
		return valueState(v)
	}
	t := st.tail + v
	return keyState{exists: true, length: st.length + len(v), hash: fnvExtend(st.hash, v), tail: t[len(t)-min(len(t), tailBytes):]}
}

// holds reports whether the key exists with exactly the value whose length
// and hash are given.
func (st keyState) holds(length int, hash uint64) bool {
	return st.exists && st.length == length && st.hash == hash
}

// model is the sequential specification of the KV store for porcupine,
// partitioned by key (operations on different keys commute, so the
// history is linearizable if and only if every key's is). An operation
// with an unknown outcome may have any output: porcupine places it anywhere
// after its call, or at the end, where it changes nothing that is checked.
var model = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(Input).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return keyState{} },
	Step: func(state, input, output any) (bool, any) {
		return step(state.(keyState), input.(Input), output.(Output))
	},
	DescribeOperation: func(input, output any) string {
		return describeInput(input.(Input)) + " -> " + describeOutput(output.(Output))
	},
	DescribeState: func(state any) string {
		st := state.(keyState)
		switch {
		case !st.exists:
			return "(absent)"
		case st.length > len(st.tail):
			return fmt.Sprintf("…%q (%d bytes)", st.tail, st.length)
		}
		return fmt.Sprintf("%q", st.tail)
	},
}

// abbrev quotes v, keeping only its ends if it is long: an append key's
// value grows to thousands of tokens, and the timeline shows one per
// operation.
func abbrev(v string) string {
	const keep = 24
	if len(v) <= 3*keep {
		return fmt.Sprintf("%q", v)
	}
	return fmt.Sprintf("%q…%q (%d bytes)", v[:keep], v[len(v)-keep:], len(v))
}

// step applies in to st and reports whether out is what it gives.
func step(st keyState, in Input, out Output) (bool, keyState) {
	next, swapped := st, false
	switch in.Op {
	case OpPut:
		next = valueState(in.Value)
	case OpAppend:
		next = st.appended(in.Value)
	case OpDelete:
		next = keyState{}
	case OpCAS:
		if st.holds(len(in.Expect), fnvExtend(fnvOffset, in.Expect)) {
			next, swapped = valueState(in.Value), true
		}
	}
	if out.Unknown {
		return true, next
	}
	same := out.Found == st.exists && (!st.exists || st.holds(out.length, out.hash))
	switch in.Op {
	case OpGet:
		return same, st
	case OpCAS:
		if swapped {
			return out.Swapped, next
		}
		return !out.Swapped && same, st
	case OpDelete:
		return out.Found == st.exists, next
	}
	return true, next // Put and Append answer nothing that depends on the state
}

func describeInput(in Input) string {
	switch in.Op {
	case OpGet:
		return fmt.Sprintf("get(%s)", in.Key)
	case OpPut:
		return fmt.Sprintf("put(%s, %q)", in.Key, in.Value)
	case OpAppend:
		return fmt.Sprintf("append(%s, %q)", in.Key, in.Value)
	case OpCAS:
		return fmt.Sprintf("cas(%s, %q -> %q)", in.Key, in.Expect, in.Value)
	case OpDelete:
		return fmt.Sprintf("delete(%s)", in.Key)
	}
	return "?"
}

func describeOutput(out Output) string {
	switch {
	case out.Unknown:
		return "unknown"
	case out.Swapped:
		return "swapped"
	case out.Found && out.compacted:
		return fmt.Sprintf("…%q (%d bytes)", out.Value, out.length)
	case out.Found:
		return abbrev(out.Value)
	}
	return "absent"
}

// appendTokens splits an append key's value into its tokens, without the
// tokenEnd that ends each.
func appendTokens(v string) []string {
	if v == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(v, tokenEnd), tokenEnd)
}

// tokenEnd ends every appended token, so that a value splits into them.
const tokenEnd = ";"
