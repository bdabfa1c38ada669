package test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/kv/kvclient"
	"github.com/flotilla-dev/flotilla/node"
)

// reserve adds n members with the next IDs and fresh ports to c without
// starting them, so that clients can list their addresses from the start.
// Start one with join.
func (c *cluster) reserve(n int) []*member {
	c.t.Helper()
	addrs, err := node.FreeAddrs(3 * n)
	if err != nil {
		c.t.Fatalf("free addresses: %v", err)
	}
	dir := filepath.Dir(c.cfgPath)
	var ms []*member
	for i := range n {
		id := uint64(len(c.members) + 1)
		m := &member{id: id, peer: addrs[3*i], client: addrs[3*i+1], admin: addrs[3*i+2],
			dataDir: filepath.Join(dir, fmt.Sprintf("node%d", id)), logPath: filepath.Join(dir, fmt.Sprintf("node%d.log", id)),
			cfgPath: filepath.Join(dir, fmt.Sprintf("node%d.yaml", id))}
		c.members = append(c.members, m)
		ms = append(ms, m)
	}
	return ms
}

// join starts the reserved member m with `kv serve --join`: its config
// lists current (the members of the running cluster) and m itself. It
// becomes a member once the leader adds it.
func (c *cluster) join(m *member, current []*member) {
	c.t.Helper()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "# written by the end-to-end test harness: member %d joins a running cluster\ncluster-id: %d\njoin: true\nmembers:\n", m.id, c.clusterID)
	for _, o := range append(slices.Clone(current), m) {
		fmt.Fprintf(&cfg, "  - {id: %d, peer: %s, client: %s, admin: %s}\n", o.id, o.peer, o.client, o.admin)
	}
	if err := os.WriteFile(m.cfgPath, []byte(cfg.String()), 0o644); err != nil {
		c.t.Fatalf("writing the config of %v: %v", m, err)
	}
	c.start(m)
	// Until m listens, a gRPC connection to it would fail and then back
	// off for a second before it dials again: wait with plain dials.
	poll(c.t, 20*time.Second, fmt.Sprintf("%v listening", m), func() (bool, string) {
		c.checkAlive(m)
		conn, err := net.DialTimeout("tcp", m.client, time.Second)
		if err != nil {
			return false, err.Error()
		}
		conn.Close()
		return true, ""
	})
}

// asMember is m as the Cluster API names it.
func asMember(m *member, learner bool) kvclient.Member {
	return kvclient.Member{ID: m.id, PeerAddr: m.peer, ClientAddr: m.client, Learner: learner}
}

// waitCaughtUp samples the leader's commit index once and polls m until
// its applied index reaches it.
func (c *cluster) waitCaughtUp(m, leader *member, within time.Duration) {
	c.t.Helper()
	var target uint64
	poll(c.t, within, fmt.Sprintf("the commit index of leader %d", leader.id), func() (bool, string) {
		st, err := c.status(leader)
		if err != nil {
			return false, err.Error()
		}
		target = st.CommitIndex
		return true, ""
	})
	poll(c.t, within, fmt.Sprintf("%v catching up to the leader's commit index %d", m, target), func() (bool, string) {
		c.checkAlive(m)
		st, err := c.status(m)
		if err != nil {
			return false, err.Error()
		}
		return st.AppliedIndex >= target, fmt.Sprintf("%s, applied %d", st.Role, st.AppliedIndex)
	})
}

// waitRemoved waits for the removed member m to exit on its own and fails
// the test unless it exits with status 0 saying it was removed.
func (c *cluster) waitRemoved(m *member, within time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	st, err := c.waitExit(m, within)
	if err != nil {
		why := ""
		if b, _ := os.ReadFile(m.logPath); !strings.Contains(string(b), "removed from the cluster") {
			why = " (it never applied its removal; compare TestRemovedWhileDownExits)"
		}
		c.t.Fatalf("removed %v: %v%s\nlog tail:\n%s", m, err, why, tailFile(m.logPath, 30))
	}
	if !st.Exited() || st.ExitCode() != 0 {
		c.t.Fatalf("removed %v exited with %v, want exit status 0\nlog tail:\n%s", m, st, tailFile(m.logPath, 30))
	}
	if b, _ := os.ReadFile(m.logPath); !strings.Contains(string(b), "removed from the cluster") {
		c.t.Errorf("removed %v exited with status 0 but its log does not say it was removed:\n%s", m, tailFile(m.logPath, 30))
	}
	return time.Since(start)
}

// checkMembers fails the test unless MemberList on the leader shows
// exactly the voters want and no learners.
func checkMembers(t *testing.T, admin *kvclient.Client, want []*member) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ms, leader, err := admin.MemberList(ctx)
	if err != nil {
		t.Fatalf("MemberList: %v", err)
	}
	var got, wantS []string
	for _, m := range ms {
		role := "voter"
		if m.Learner {
			role = "learner"
		}
		got = append(got, fmt.Sprintf("%d %s %s %s", m.ID, role, m.PeerAddr, m.ClientAddr))
	}
	for _, m := range want {
		wantS = append(wantS, fmt.Sprintf("%d voter %s %s", m.id, m.peer, m.client))
	}
	if !slices.Equal(got, wantS) {
		t.Fatalf("MemberList (leader %d):\n  %s\nwant:\n  %s", leader, strings.Join(got, "\n  "), strings.Join(wantS, "\n  "))
	}
	t.Logf("MemberList: leader %d, members %s", leader, strings.Join(got, "; "))
}
