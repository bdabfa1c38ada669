package kvclient

import (
	"context"

	"github.com/flotilla-dev/flotilla/proto/kvpb"
)

// KeyValue is a stored key with its value and version (the log index of
// its last write).
type KeyValue struct {
	Key, Value []byte
	Version    uint64
}

// ReadOption changes how a read is served.
type ReadOption func(*readOpts)

type readOpts struct{ cons kvpb.Consistency }

// Serializable lets any member answer the read from its local state, which
// may lag the cluster (it never goes back in time on one member). Reads
// are linearizable without it.
func Serializable() ReadOption {
	return func(o *readOpts) { o.cons = kvpb.Consistency_CONSISTENCY_SERIALIZABLE }
}

func readOptions(opts []ReadOption) readOpts {
	o := readOpts{cons: kvpb.Consistency_CONSISTENCY_LINEARIZABLE}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Get reads key. found is false for a missing key.
func (c *Client) Get(ctx context.Context, key []byte, opts ...ReadOption) (kv KeyValue, found bool, err error) {
	o := readOptions(opts)
	req := &kvpb.GetRequest{Key: key, Consistency: o.cons}
	var resp *kvpb.GetResponse
	err = c.call(ctx, o.cons != kvpb.Consistency_CONSISTENCY_SERIALIZABLE, func(ctx context.Context, addr string) (err error) {
		cl, err := c.conn(addr)
		if err != nil {
			return err
		}
		resp, err = cl.Get(ctx, req)
		return err
	})
	if err != nil {
		return KeyValue{}, false, err
	}
	return KeyValue{Key: key, Value: resp.Value, Version: resp.Version}, resp.Found, nil
}

// RangeOptions selects the keys of a Range.
type RangeOptions struct {
	// End is the exclusive end of the range; empty means no bound.
	End []byte
	// Prefix makes the range every key that begins with the start key.
	Prefix bool
	// Limit bounds the keys returned; 0 means the server's maximum (1000).
	Limit int
}

// Range returns the keys from start (inclusive) as opts selects, in byte
// order, and whether more keys remain in range after the last.
func (c *Client) Range(ctx context.Context, start []byte, ro RangeOptions, opts ...ReadOption) (kvs []KeyValue, more bool, err error) {
	o := readOptions(opts)
	req := &kvpb.RangeRequest{Key: start, End: ro.End, Prefix: ro.Prefix, Limit: int32(min(ro.Limit, 1<<30)), Consistency: o.cons}
	var resp *kvpb.RangeResponse
	err = c.call(ctx, o.cons != kvpb.Consistency_CONSISTENCY_SERIALIZABLE, func(ctx context.Context, addr string) (err error) {
		cl, err := c.conn(addr)
		if err != nil {
			return err
		}
		resp, err = cl.Range(ctx, req)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	kvs = make([]KeyValue, len(resp.Kvs))
	for i, e := range resp.Kvs {
		kvs[i] = KeyValue{Key: e.Key, Value: e.Value, Version: e.Version}
	}
	return kvs, resp.More, nil
}

// write runs a write under a session from the pool.
func (c *Client) write(ctx context.Context, do func(context.Context, kvpb.KVClient, *kvpb.Session) error) error {
	s := c.acquire()
	defer c.release(s)
	sess := &kvpb.Session{ClientId: s.id, Seq: s.seq}
	return c.call(ctx, true, func(ctx context.Context, addr string) error {
		cl, err := c.conn(addr)
		if err != nil {
			return err
		}
		return do(ctx, cl, sess)
	})
}

// Put sets key to value and returns the key's new version.
func (c *Client) Put(ctx context.Context, key, value []byte) (version uint64, err error) {
	err = c.write(ctx, func(ctx context.Context, cl kvpb.KVClient, s *kvpb.Session) error {
		resp, err := cl.Put(ctx, &kvpb.PutRequest{Session: s, Key: key, Value: value})
		if err == nil {
			version = resp.Version
		}
		return err
	})
	return version, err
}

// Delete removes key and reports whether it existed.
func (c *Client) Delete(ctx context.Context, key []byte) (deleted bool, err error) {
	err = c.write(ctx, func(ctx context.Context, cl kvpb.KVClient, s *kvpb.Session) error {
		resp, err := cl.Delete(ctx, &kvpb.DeleteRequest{Session: s, Key: key})
		if err == nil {
			deleted = resp.Deleted
		}
		return err
	})
	return deleted, err
}

// Append appends value to key's value (creating the key) and returns the
// key's new version. A retried Append is applied once.
func (c *Client) Append(ctx context.Context, key, value []byte) (version uint64, err error) {
	err = c.write(ctx, func(ctx context.Context, cl kvpb.KVClient, s *kvpb.Session) error {
		resp, err := cl.Append(ctx, &kvpb.AppendRequest{Session: s, Key: key, Value: value})
		if err == nil {
			version = resp.Version
		}
		return err
	})
	return version, err
}

// Expect is the condition of a CompareAndSwap; build it with ExpectValue,
// ExpectVersion or ExpectAbsent.
type Expect struct {
	set func(*kvpb.CompareAndSwapRequest)
}

// ExpectValue holds when the key exists with exactly value.
func ExpectValue(value []byte) Expect {
	if value == nil {
		value = []byte{}
	}
	return Expect{func(r *kvpb.CompareAndSwapRequest) {
		r.Expect = &kvpb.CompareAndSwapRequest_ExpectValue{ExpectValue: value}
	}}
}

// ExpectVersion holds when the key's version is version (0: absent).
func ExpectVersion(version uint64) Expect {
	return Expect{func(r *kvpb.CompareAndSwapRequest) {
		r.Expect = &kvpb.CompareAndSwapRequest_ExpectVersion{ExpectVersion: version}
	}}
}

// ExpectAbsent holds when the key does not exist.
func ExpectAbsent() Expect {
	return Expect{func(r *kvpb.CompareAndSwapRequest) {
		r.Expect = &kvpb.CompareAndSwapRequest_ExpectAbsent{ExpectAbsent: true}
	}}
}

// CASResult is the outcome of a CompareAndSwap.
type CASResult struct {
	// Swapped reports that the value was written; Version is then the new
	// version.
	Swapped bool
	// When not swapped: the key's current state (Found, Value, Version).
	Found   bool
	Value   []byte
	Version uint64
}

// CompareAndSwap writes value to key if expect holds.
func (c *Client) CompareAndSwap(ctx context.Context, key, value []byte, expect Expect) (res CASResult, err error) {
	err = c.write(ctx, func(ctx context.Context, cl kvpb.KVClient, s *kvpb.Session) error {
		req := &kvpb.CompareAndSwapRequest{Session: s, Key: key, Value: value}
		if expect.set != nil {
			expect.set(req)
		}
		resp, err := cl.CompareAndSwap(ctx, req)
		if err == nil {
			res = CASResult{Swapped: resp.Swapped, Found: resp.Found, Value: resp.Value, Version: resp.Version}
		}
		return err
	})
	return res, err
}

// Status asks the member at endpoint (one attempt, no redirects) for its
// status.
func (c *Client) Status(ctx context.Context, endpoint string) (*kvpb.StatusResponse, error) {
	cl, err := c.conn(endpoint)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.AttemptTimeout)
	defer cancel()
	return cl.Status(ctx, &kvpb.StatusRequest{})
}

// Endpoints returns the members the Client knows: those it was given and
// leaders it learned from redirects.
func (c *Client) Endpoints() []string {
	return append([]string(nil), c.endpointsSnapshot()...)
}
