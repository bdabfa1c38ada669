package sim

import (
	"errors"
	"fmt"
	"math"

	"github.com/anishathalye/porcupine"

	"github.com/flotilla-dev/flotilla/kv"
	"github.com/flotilla-dev/flotilla/raft"
)

// KV clients: each runs one operation at a time against the replicated
// store, retrying it (with the same session sequence number, so a write
// applies once) on another node after a timeout, and records a history
// that porcupine checks for linearizability (linear.go).

// Operations of the history.
const (
	kvGet byte = iota + 1
	kvPut
	kvAppend
	kvCAS
	kvDelete
)

var kvKeys = []string{"x", "y", "z"}

type kvInput struct {
	Op                 byte
	Key, Value, Expect string
	ReadIndex          bool // a Get served by ReadIndex rather than the log
}

type kvOutput struct {
	Found, Swapped bool
	Value          string
	Unknown        bool // the run ended before the outcome was known
}

// kvClient is one simulated client.
type kvClient struct {
	id      int
	session uint64
	seq     uint64
	op      *kvOp
	ops     int // operations started
	// wake numbers the client's scheduled wake-ups: only the newest one
	// acts, so that a retry timer of an attempt already superseded is
	// ignored.
	wake int
}

type kvOp struct {
	in   kvInput
	call int64
	seq  uint64 // session sequence number (0 for reads)
}

// kvAttempt is an attempt in flight on a host: an entry proposed at
// (index, term), or a ReadIndex read.
type kvAttempt struct {
	client *kvClient
	op     *kvOp
	term   uint64
	data   []byte
}

// clientAct starts the client's next operation, or retries the current
// one: soon if the attempt could not even be made (the node was down or
// not the leader), after a timeout otherwise.
func (w *world) clientAct(c *kvClient, wake int) {
	if !w.faulty || wake != c.wake {
		return
	}
	if c.op == nil {
		c.ops++
		c.op = w.newOp(c)
	}
	delay := 30 * w.p.tickEvery
	if !w.attempt(c) {
		delay = 2 * w.p.latency
	}
	w.wakeClient(c, delay)
}

func (w *world) wakeClient(c *kvClient, delay int64) {
	c.wake++
	w.schedule(&event{kind: evKV, node: uint64(c.id), inc: c.wake}, delay)
}

func (w *world) newOp(c *kvClient) *kvOp {
	key := kvKeys[w.rng.IntN(len(kvKeys))]
	val := fmt.Sprintf("%d.%d", c.id, c.ops)
	op := &kvOp{call: w.now()}
	switch k := w.rng.IntN(10); {
	case k < 3:
		op.in = kvInput{Op: kvGet, Key: key, ReadIndex: w.rng.IntN(2) == 0}
	case k < 5:
		op.in = kvInput{Op: kvPut, Key: key, Value: val}
	case k < 7:
		op.in = kvInput{Op: kvAppend, Key: key, Value: "+" + val}
	case k < 9:
		// Expect the value the client last saw written is unknowable here;
		// expect one of the recent values so that some CASes succeed.
		op.in = kvInput{Op: kvCAS, Key: key, Value: val, Expect: fmt.Sprintf("%d.%d", w.rng.IntN(len(w.clients)), max(c.ops-1-w.rng.IntN(3), 0))}
	default:
		op.in = kvInput{Op: kvDelete, Key: key}
	}
	if op.in.Op != kvGet {
		c.seq++
		op.seq = c.seq
	}
	return op
}

// attempt sends the client's operation to the node it believes leads, and
// reports whether a node took it.
func (w *world) attempt(c *kvClient) bool {
	op := c.op
	target := w.lastLead
	if target == 0 || w.rng.IntN(3) == 0 {
		target = uint64(1 + w.rng.IntN(len(w.nodes)))
	}
	h := w.nodes[target-1]
	if !h.up {
		return false
	}
	if op.in.Op == kvGet && op.in.ReadIndex {
		w.nextRead++
		if err := h.core.ReadIndex(w.nextRead); err != nil {
			return false
		}
		w.chk.reads[w.nextRead] = readReq{node: h.id, minIndex: w.chk.maxAcked}
		h.kvReads[w.nextRead] = kvAttempt{client: c, op: op}
		h.handleReady()
		return true
	}
	var cmd kv.Command
	session := c.session
	switch op.in.Op {
	case kvGet:
		cmd, session = kv.Command{Op: kv.OpGet, Key: []byte(op.in.Key)}, 0
	case kvPut:
		cmd = kv.Command{Op: kv.OpPut, Key: []byte(op.in.Key), Value: []byte(op.in.Value)}
	case kvAppend:
		cmd = kv.Command{Op: kv.OpAppend, Key: []byte(op.in.Key), Value: []byte(op.in.Value)}
	case kvCAS:
		cmd = kv.Command{Op: kv.OpCAS, Key: []byte(op.in.Key), Value: []byte(op.in.Value), Expect: []byte(op.in.Expect)}
	case kvDelete:
		cmd = kv.Command{Op: kv.OpDelete, Key: []byte(op.in.Key)}
	}
	data := kvCommand(session, op.seq, w.now()/1000, cmd)
	idx, term, err := h.core.Propose(data)
	if err != nil {
		var nl *raft.NotLeaderError
		if errors.As(err, &nl) && nl.Leader != raft.None {
			w.lastLead = nl.Leader
		}
		return false
	}
	h.kvPending[idx] = kvAttempt{client: c, op: op, term: term, data: data}
	h.handleReady()
	return true
}

// kvApplied finishes the attempt proposed at e's index on h, if e is it.
func (h *host) kvApplied(e raft.Entry, res []byte) {
	a, ok := h.kvPending[e.Index]
	if !ok {
		return
	}
	delete(h.kvPending, e.Index)
	if a.term != e.Term || string(a.data) != string(e.Data) {
		return // overwritten: the client retries after its timeout
	}
	out, err := kvResult(a.op.in, res)
	if err != nil {
		h.w.fail("KV results", "n%d: %v %q at %d: %v", h.id, a.op.in.Op, a.op.in.Key, e.Index, err)
	}
	h.w.finishOp(a.client, a.op, out)
}

// kvReadConfirmed serves the ReadIndex reads whose index h has applied.
func (h *host) kvReadsApplied() {
	for id, r := range h.kvReadsAt {
		if r.index <= h.sm.applied || h.w.opts.breakReadWait {
			delete(h.kvReadsAt, id)
			h.w.finishOp(r.client, r.op, h.app.localGet(r.op.in.Key))
		}
	}
}

// finishOp records a completed operation, if it is still the client's
// current one (an earlier attempt may have answered it already).
func (w *world) finishOp(c *kvClient, op *kvOp, out kvOutput) {
	if c.op != op {
		return
	}
	c.op = nil
	w.history = append(w.history, porcupine.Operation{ClientId: c.id, Input: op.in, Call: op.call, Output: out, Return: w.now()})
	w.res.KVOps++
	w.trace.add(w.now(), "client c%d %s -> %s", c.id, describeInput(op.in), describeOutput(out))
	w.wakeClient(c, w.jitter(w.p.proposeEvery))
}

// closeHistory records the operations still in flight at the end of the
// run with an unknown outcome: they may or may not have taken effect.
func (w *world) closeHistory() {
	for _, c := range w.clients {
		if c.op != nil {
			w.history = append(w.history, porcupine.Operation{ClientId: c.id, Input: c.op.in, Call: c.op.call,
				Output: kvOutput{Unknown: true}, Return: math.MaxInt64})
			c.op = nil
		}
	}
}
