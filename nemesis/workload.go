package nemesis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"

	"github.com/flotilla-dev/flotilla/kv/kvclient"
)

// The keys the clients use, each suffixed with the key epoch (".0", ".1",
// ...: Options.KeyEpoch). Register keys take Put, CAS, Delete and Get;
// append keys take only Append and Get, so that the final value of an
// append key lists every append applied to it, which the lost-write check
// compares with the acknowledged ones.
var (
	registerKeys = []string{"r0", "r1", "r2", "r3"}
	appendKeys   = []string{"a0", "a1", "a2", "a3"}
)

// isAppendKey reports whether k is one of appendKeys (in some epoch).
func isAppendKey(k string) bool { return strings.HasPrefix(k, "a") }

// workload is the set of concurrent clients.
type workload struct {
	opts    Options
	h       *history
	clients []*client
	readers []*kvclient.Client // one per member, for Options.StaleReads
}

// client runs one operation at a time through its own kvclient.Client
// (its own sessions and leader hint).
type client struct {
	id   int
	kv   *kvclient.Client
	rng  *rand.Rand
	n    int               // operations started
	seen map[string]string // the last value this client saw per key, for CAS
	err  error             // from kvclient.New
}

func newWorkload(opts Options, h *history, endpoints []string) *workload {
	w := &workload{opts: opts, h: h}
	for i := range opts.Clients {
		c := &client{id: i + 1, rng: rand.New(rand.NewPCG(uint64(opts.Seed), uint64(i+1))), seen: map[string]string{}}
		c.kv, c.err = kvclient.New(kvclient.Config{Endpoints: endpoints, AttemptTimeout: opts.OpTimeout / 3})
		w.clients = append(w.clients, c)
	}
	if opts.StaleReads {
		for _, ep := range endpoints {
			r, err := kvclient.New(kvclient.Config{Endpoints: []string{ep}, AttemptTimeout: opts.OpTimeout / 3})
			if err == nil {
				w.readers = append(w.readers, r)
			}
		}
	}
	return w
}

// run runs every client until ctx ends; an operation in flight then
// finishes (within OpTimeout).
func (w *workload) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, c := range w.clients {
		if c.err != nil {
			continue
		}
		wg.Go(func() {
			for ctx.Err() == nil {
				w.do(ctx, c, w.next(c))
			}
		})
	}
	wg.Wait()
}

func (w *workload) close() {
	for _, c := range w.clients {
		if c.kv != nil {
			c.kv.Close()
		}
	}
	for _, r := range w.readers {
		r.Close()
	}
}

// next picks the client's next operation, on a key of the current epoch.
func (w *workload) next(c *client) Input {
	c.n++
	val := fmt.Sprintf("c%d.%d", c.id, c.n)
	epoch := w.h.now() / int64(w.opts.KeyEpoch)
	if c.rng.IntN(2) == 0 {
		k := fmt.Sprintf("%s.%d", appendKeys[c.rng.IntN(len(appendKeys))], epoch)
		if c.rng.IntN(10) < 4 {
			return Input{Op: OpGet, Key: k}
		}
		return Input{Op: OpAppend, Key: k, Value: val + tokenEnd}
	}
	k := fmt.Sprintf("%s.%d", registerKeys[c.rng.IntN(len(registerKeys))], epoch)
	switch r := c.rng.IntN(10); {
	case r < 4:
		return Input{Op: OpGet, Key: k}
	case r < 7:
		return Input{Op: OpPut, Key: k, Value: val}
	case r < 9:
		return Input{Op: OpCAS, Key: k, Expect: c.seen[k], Value: val}
	default:
		return Input{Op: OpDelete, Key: k}
	}
}

// do runs in and records it. A failed or timed-out write has an unknown
// outcome; a failed read is left out of the history (it changed nothing).
func (w *workload) do(ctx context.Context, c *client, in Input) {
	opCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.opts.OpTimeout)
	defer cancel()
	e := Event{Client: c.id, In: in, Call: w.h.now()}
	kv, opts := c.kv, []kvclient.ReadOption(nil)
	if in.Op == OpGet && len(w.readers) > 0 {
		kv, opts = w.readers[c.rng.IntN(len(w.readers))], []kvclient.ReadOption{kvclient.Serializable()}
	}
	out, err := apply(opCtx, kv, in, opts...)
	e.Return = w.h.now()
	if err != nil {
		if in.Op == OpGet {
			return
		}
		out = Output{Unknown: true}
	}
	e.Out = out.compact()
	switch {
	case in.Op == OpGet && out.Found, in.Op == OpCAS && !out.Swapped && out.Found:
		c.seen[in.Key] = out.Value
	case in.Op == OpPut, in.Op == OpCAS && out.Swapped:
		c.seen[in.Key] = in.Value
	}
	w.h.add(e)
}

// apply runs one operation.
func apply(ctx context.Context, kv *kvclient.Client, in Input, opts ...kvclient.ReadOption) (Output, error) {
	k := []byte(in.Key)
	switch in.Op {
	case OpGet:
		r, found, err := kv.Get(ctx, k, opts...)
		return Output{Found: found, Value: string(r.Value)}, err
	case OpPut:
		_, err := kv.Put(ctx, k, []byte(in.Value))
		return Output{}, err
	case OpAppend:
		_, err := kv.Append(ctx, k, []byte(in.Value))
		return Output{}, err
	case OpCAS:
		r, err := kv.CompareAndSwap(ctx, k, []byte(in.Value), kvclient.ExpectValue([]byte(in.Expect)))
		return Output{Swapped: r.Swapped, Found: r.Found, Value: string(r.Value)}, err
	case OpDelete:
		deleted, err := kv.Delete(ctx, k)
		return Output{Found: deleted}, err
	}
	return Output{}, fmt.Errorf("nemesis: unknown op %d", in.Op)
}
