package kvserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/kv/kvclient"
	"github.com/flotilla-dev/flotilla/node"
	"github.com/flotilla-dev/flotilla/proto/kvpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// cluster is n in-process servers over loopback TCP.
type cluster struct {
	t       *testing.T
	cfgs    []Config
	servers []*Server
}

func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	addrs, err := node.FreeAddrs(2 * n)
	if err != nil {
		t.Fatal(err)
	}
	var members []Member
	for i := range n {
		members = append(members, Member{ID: uint64(i + 1), PeerAddr: addrs[2*i], ClientAddr: addrs[2*i+1]})
	}
	c := &cluster{t: t}
	dir := t.TempDir()
	for i := range n {
		cfg := Config{ID: uint64(i + 1), ClusterID: 99, Members: members, DataDir: fmt.Sprintf("%s/m%d", dir, i+1),
			Node: node.Config{TickInterval: 10 * time.Millisecond, NoSync: true}, Logger: slog.New(slog.DiscardHandler)}
		s, err := Start(cfg)
		if err != nil {
			t.Fatalf("Start member %d: %v", i+1, err)
		}
		c.cfgs = append(c.cfgs, cfg)
		c.servers = append(c.servers, s)
	}
	t.Cleanup(c.stop)
	return c
}

func (c *cluster) stop() {
	for _, s := range c.servers {
		if s != nil {
			s.Stop()
		}
	}
}

func (c *cluster) endpoints() []string {
	var eps []string
	for _, m := range c.cfgs[0].Members {
		eps = append(eps, m.ClientAddr)
	}
	return eps
}

func (c *cluster) client() *kvclient.Client {
	cl, err := kvclient.New(kvclient.Config{Endpoints: c.endpoints(), AttemptTimeout: time.Second})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// raw dials one member without the client's retries.
func (c *cluster) raw(i int) kvpb.KVClient {
	cc, err := grpc.NewClient(c.servers[i].ClientAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cc.Close() })
	return kvpb.NewKVClient(cc)
}

// leader waits for a leader and returns its index.
func (c *cluster) leader(ctx context.Context) int {
	c.t.Helper()
	for ctx.Err() == nil {
		for i, s := range c.servers {
			if s != nil && s.Host().Node().Status().Role.String() == "leader" {
				return i
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
	c.t.Fatal("no leader elected")
	return -1
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestOperations(t *testing.T) {
	c := startCluster(t, 3)
	cl := c.client()
	ctx := ctxT(t)
	v1, err := cl.Put(ctx, []byte("a"), []byte("1"))
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if e, found, err := cl.Get(ctx, []byte("a")); err != nil || !found || string(e.Value) != "1" || e.Version != v1 {
		t.Fatalf("Get a = %q v%d found=%v err=%v; want \"1\" v%d", e.Value, e.Version, found, err, v1)
	}
	if _, err := cl.Append(ctx, []byte("a"), []byte("23")); err != nil {
		t.Fatalf("Append: %v", err)
	}
	res, err := cl.CompareAndSwap(ctx, []byte("a"), []byte("x"), kvclient.ExpectValue([]byte("1")))
	if err != nil || res.Swapped || string(res.Value) != "123" {
		t.Fatalf("CAS expecting a stale value = %+v, %v; want not swapped, current 123", res, err)
	}
	res, err = cl.CompareAndSwap(ctx, []byte("a"), []byte("x"), kvclient.ExpectValue([]byte("123")))
	if err != nil || !res.Swapped {
		t.Fatalf("CAS expecting the current value = %+v, %v; want swapped", res, err)
	}
	created, err := cl.CompareAndSwap(ctx, []byte("b"), []byte("new"), kvclient.ExpectAbsent())
	if err != nil || !created.Swapped {
		t.Fatalf("CAS create-if-absent = %+v, %v", created, err)
	}
	if res, err := cl.CompareAndSwap(ctx, []byte("b"), []byte("newer"), kvclient.ExpectVersion(created.Version)); err != nil || !res.Swapped {
		t.Fatalf("CAS on version = %+v, %v", res, err)
	}
	for _, k := range []string{"p/1", "p/2", "q"} {
		if _, err := cl.Put(ctx, []byte(k), []byte("v"+k)); err != nil {
			t.Fatal(err)
		}
	}
	kvs, more, err := cl.Range(ctx, []byte("p/"), kvclient.RangeOptions{Prefix: true})
	if err != nil || more || len(kvs) != 2 || string(kvs[1].Key) != "p/2" {
		t.Fatalf("Range p/ = %v more=%v err=%v", kvs, more, err)
	}
	kvs, more, err = cl.Range(ctx, nil, kvclient.RangeOptions{Limit: 2})
	if err != nil || !more || len(kvs) != 2 || string(kvs[0].Key) != "a" {
		t.Fatalf("Range limit 2 = %v more=%v err=%v", kvs, more, err)
	}
	if deleted, err := cl.Delete(ctx, []byte("a")); err != nil || !deleted {
		t.Fatalf("Delete a = %v, %v", deleted, err)
	}
	if deleted, err := cl.Delete(ctx, []byte("a")); err != nil || deleted {
		t.Fatalf("Delete a again = %v, %v; want false", deleted, err)
	}
	if _, found, err := cl.Get(ctx, []byte("a")); err != nil || found {
		t.Fatalf("Get deleted key: found=%v err=%v", found, err)
	}
}

func TestFollowerRedirectsAndServesSerializableReads(t *testing.T) {
	c := startCluster(t, 3)
	ctx := ctxT(t)
	cl := c.client()
	v, err := cl.Put(ctx, []byte("k"), []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	lead := c.leader(ctx)
	f := (lead + 1) % 3
	_, err = c.raw(f).Put(ctx, &kvpb.PutRequest{Key: []byte("k"), Value: []byte("w")})
	st := status.Convert(err)
	if st.Code() != codes.FailedPrecondition {
		t.Fatalf("Put on a follower: %v; want FailedPrecondition", err)
	}
	var hint *kvpb.NotLeader
	for _, d := range st.Details() {
		hint, _ = d.(*kvpb.NotLeader)
	}
	if hint == nil || hint.LeaderClientAddr != c.servers[lead].ClientAddr() {
		t.Fatalf("NotLeader detail %v; want the leader's client address %s", hint, c.servers[lead].ClientAddr())
	}
	// A linearizable read on the follower sees the write: the follower asks
	// the leader for a read index and waits until it has applied it.
	r, err := c.raw(f).Get(ctx, &kvpb.GetRequest{Key: []byte("k")})
	if err != nil || !r.Found || r.Version != v {
		t.Fatalf("linearizable Get on a follower right after the write = %v, %v; want version %d", r, err, v)
	}
	// A serializable read on the follower sees it once it applied it.
	for {
		r, err := c.raw(f).Get(ctx, &kvpb.GetRequest{Key: []byte("k"), Consistency: kvpb.Consistency_CONSISTENCY_SERIALIZABLE})
		if err != nil {
			t.Fatalf("serializable Get on a follower: %v", err)
		}
		if r.Found && r.Version == v && string(r.Value) == "v" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("follower never applied the write: %v", r)
		}
	}
}

func TestRetriedWriteAppliesOnce(t *testing.T) {
	c := startCluster(t, 3)
	ctx := ctxT(t)
	cl := c.client()
	if _, err := cl.Put(ctx, []byte("warm"), nil); err != nil {
		t.Fatal(err)
	}
	lead := c.raw(c.leader(ctx))
	req := &kvpb.AppendRequest{Session: &kvpb.Session{ClientId: 77, Seq: 1}, Key: []byte("log"), Value: []byte("x")}
	r1, err := lead.Append(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := lead.Append(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Version != r2.Version {
		t.Errorf("retry answered version %d, first %d; want the first result", r2.Version, r1.Version)
	}
	e, _, err := cl.Get(ctx, []byte("log"))
	if err != nil || string(e.Value) != "x" {
		t.Fatalf("after a retried append the value is %q (%v); want it applied once: \"x\"", e.Value, err)
	}
	// An older sequence number is refused, not applied.
	req.Session.Seq = 0
	if _, err := lead.Append(ctx, req); status.Code(err) != codes.Aborted {
		t.Errorf("append with a stale sequence: %v; want Aborted", err)
	}
}

func TestLimitsAreEnforcedWithClearErrors(t *testing.T) {
	c := startCluster(t, 1)
	c.servers[0].cfg.MaxValueBytes = 10 // a small configured limit
	ctx := ctxT(t)
	cl := c.client()
	for _, tc := range []struct {
		name     string
		key, val []byte
		want     string
	}{
		{"empty key", nil, []byte("v"), "key is empty"},
		{"key over 4 KiB", bytes.Repeat([]byte("k"), 4097), nil, "key is 4097 bytes; the limit is 4096"},
		{"value over the configured limit", []byte("k"), bytes.Repeat([]byte("v"), 11), "value is 11 bytes; the limit is 10"},
	} {
		_, err := cl.Put(ctx, tc.key, tc.val)
		var ce *kvclient.Error
		if !errors.As(err, &ce) || ce.Code != codes.InvalidArgument || !strings.Contains(ce.Msg, tc.want) {
			t.Errorf("%s: Put = %v; want InvalidArgument mentioning %q", tc.name, err, tc.want)
		}
	}
	var ce *kvclient.Error
	if _, _, err := cl.Range(ctx, []byte("a"), kvclient.RangeOptions{End: []byte("b"), Prefix: true}); !errors.As(err, &ce) || ce.Code != codes.InvalidArgument {
		t.Errorf("Range with both a prefix and an end = %v; want InvalidArgument", err)
	}
	if _, found, err := cl.Get(ctx, []byte("k")); err != nil || found {
		t.Errorf("a rejected write reached the store: found=%v err=%v", found, err)
	}
}

func TestClientFollowsLeaderAcrossFailover(t *testing.T) {
	c := startCluster(t, 3)
	ctx := ctxT(t)
	cl := c.client()
	if _, err := cl.Put(ctx, []byte("before"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	lead := c.leader(ctx)
	c.servers[lead].Stop()
	c.servers[lead] = nil
	if _, err := cl.Put(ctx, []byte("after"), []byte("2")); err != nil {
		t.Fatalf("Put after the leader stopped: %v", err)
	}
	for _, k := range []string{"before", "after"} {
		if _, found, err := cl.Get(ctx, []byte(k)); err != nil || !found {
			t.Errorf("Get %s after failover: found=%v err=%v", k, found, err)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no id", Config{Members: []Member{{ID: 1, PeerAddr: "a:1", ClientAddr: "a:2"}}}, "non-zero"},
		{"not a member", Config{ID: 2, Members: []Member{{ID: 1, PeerAddr: "a:1", ClientAddr: "a:2"}}}, "member 2 is not in the member list"},
		{"duplicate", Config{ID: 1, Members: []Member{{ID: 1, PeerAddr: "a:1", ClientAddr: "a:2"}, {ID: 1, PeerAddr: "b:1", ClientAddr: "b:2"}}}, "unique"},
		{"no client addr", Config{ID: 1, Members: []Member{{ID: 1, PeerAddr: "a:1"}}}, "client address"},
		{"value limit over max", Config{ID: 1, MaxValueBytes: 2 << 20, Members: []Member{{ID: 1, PeerAddr: "a:1", ClientAddr: "a:2"}}}, "over the store's limit"},
	} {
		_, err := Start(tc.cfg)
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Start = %v; want ErrInvalidConfig mentioning %q", tc.name, err, tc.want)
		}
	}
}
