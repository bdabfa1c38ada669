package kvserver

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/kv/kvclient"
	"github.com/flotilla-dev/flotilla/node"
)

// join starts one more server that joins c's cluster.
func (c *cluster) join(t *testing.T, id uint64) *Server {
	t.Helper()
	addrs, err := node.FreeAddrs(2)
	if err != nil {
		t.Fatal(err)
	}
	members := append([]Member(nil), c.cfgs[0].Members...)
	members = append(members, Member{ID: id, PeerAddr: addrs[0], ClientAddr: addrs[1]})
	cfg := Config{ID: id, ClusterID: 99, Members: members, Join: true, DataDir: fmt.Sprintf("%s/j%d", t.TempDir(), id),
		Node: node.Config{TickInterval: 10 * time.Millisecond, NoSync: true}, Logger: slog.New(slog.DiscardHandler)}
	s, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start joining member %d: %v", id, err)
	}
	c.cfgs = append(c.cfgs, cfg)
	c.servers = append(c.servers, s)
	return s
}

func TestClusterMembershipAndTransfer(t *testing.T) {
	c := startCluster(t, 3)
	ctx := ctxT(t)
	cl := c.client()
	if _, err := cl.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	s4 := c.join(t, 4)
	ms, err := cl.MemberAdd(ctx, kvclient.Member{ID: 4, PeerAddr: s4.PeerAddr(), ClientAddr: s4.ClientAddr(), Learner: true})
	if err != nil {
		t.Fatalf("MemberAdd: %v", err)
	}
	if len(ms) != 4 || !ms[3].Learner || ms[3].ClientAddr != s4.ClientAddr() {
		t.Fatalf("after adding a learner: %+v", ms)
	}
	// A retried add (its answer lost) succeeds without a change.
	if ms, err := cl.MemberAdd(ctx, kvclient.Member{ID: 4, PeerAddr: s4.PeerAddr(), ClientAddr: s4.ClientAddr(), Learner: true}); err != nil || len(ms) != 4 {
		t.Fatalf("retried MemberAdd = %+v, %v; want the same 4 members", ms, err)
	}
	if _, err := cl.MemberPromote(ctx, 4); err != nil {
		t.Fatalf("MemberPromote: %v", err)
	}
	if _, err := cl.MemberPromote(ctx, 4); err != nil {
		t.Fatalf("retried MemberPromote: %v", err)
	}
	// The new member serves linearizable reads of what was written before.
	one, err := kvclient.New(kvclient.Config{Endpoints: []string{s4.ClientAddr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	if e, found, err := one.Get(ctx, []byte("k"), kvclient.Serializable()); err != nil || !found || string(e.Value) != "v" {
		// A serializable read may lag; a linearizable one may not.
		if e, found, err = one.Get(ctx, []byte("k")); err != nil || !found || string(e.Value) != "v" {
			t.Fatalf("Get on the new member: %q found=%v err=%v", e.Value, found, err)
		}
	}
	// Transfer leadership to the new member, then remove member 1.
	if to, err := cl.LeaderTransfer(ctx, 4); err != nil || to != 4 {
		t.Fatalf("LeaderTransfer(4) = %d, %v", to, err)
	}
	if _, err := cl.MemberRemove(ctx, 1); err != nil {
		t.Fatalf("MemberRemove(1): %v", err)
	}
	select {
	case <-c.servers[0].Done():
	case <-ctx.Done():
		t.Fatal("the removed member did not stop")
	}
	ms, leader, err := cl.MemberList(ctx)
	if err != nil || len(ms) != 3 || ms[0].ID != 2 || leader == 1 {
		t.Fatalf("MemberList after removing 1 = %+v leader %d, %v", ms, leader, err)
	}
	if _, err := cl.Put(ctx, []byte("after"), []byte("x")); err != nil {
		t.Fatalf("Put after the changes: %v", err)
	}
	// A retried removal (its answer lost) succeeds without a change; a
	// member that never was still fails, naming it.
	if ms, err := cl.MemberRemove(ctx, 1); err != nil || len(ms) != 3 {
		t.Fatalf("retried MemberRemove(1) = %+v, %v; want the same 3 members", ms, err)
	}
	if _, err := cl.MemberRemove(ctx, 9); err == nil || !strings.Contains(err.Error(), "9") {
		t.Errorf("removing a non-member: %v, want an error naming it", err)
	}
}
