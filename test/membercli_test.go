package test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestMemberCLI drives `flotilla member` and `flotilla leader` against a
// real 3-member cluster: the member list (table and JSON), a removal of a
// member that does not exist, an add without its peer address, adding a
// joining member as a learner, promoting and removing it, and a
// leadership transfer.
func TestMemberCLI(t *testing.T) {
	c := newCluster(t, 3, 6161)
	joiner := c.reserve(1)[0]
	leader := c.waitLeader(20 * time.Second)
	eps := strings.Join([]string{c.members[0].client, c.members[1].client, c.members[2].client}, ",")
	cli := func(wantCode int, args ...string) result {
		t.Helper()
		r := runFlotilla(t, runOpts{}, append(args, "--endpoints", eps)...)
		if r.code != wantCode {
			t.Fatalf("want exit status %d, got:\n%s", wantCode, r)
		}
		return r
	}

	r := cli(0, "member", "list")
	checkMemberTable(t, r, c.members[:3], leader.id, 0)
	var js struct {
		Leader  uint64 `json:"leader"`
		Members []struct {
			ID         uint64 `json:"id"`
			Role       string `json:"role"`
			PeerAddr   string `json:"peer_addr"`
			ClientAddr string `json:"client_addr"`
		} `json:"members"`
	}
	r = cli(0, "member", "list", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &js); err != nil {
		t.Fatalf("member list --json is not JSON: %v\n%s", err, r)
	}
	if js.Leader != leader.id || len(js.Members) != 3 {
		t.Errorf("member list --json: leader %d, %d members; want leader %d and 3 members\n%s", js.Leader, len(js.Members), leader.id, r)
	}
	for i, m := range js.Members {
		if i < 3 && (m.ID != c.members[i].id || m.PeerAddr != c.members[i].peer || m.ClientAddr != c.members[i].client) {
			t.Errorf("member list --json: member %d is %+v, want %v with peer %s", i, m, c.members[i], c.members[i].peer)
		}
	}

	r = cli(1, "member", "remove", "99")
	if !strings.Contains(r.stderr, "99") || !strings.Contains(r.stderr, "not a member") {
		t.Errorf("member remove 99: stderr should say that member 99 is not a member:\n%s", r)
	}
	t.Logf("member remove 99: exit %d, stderr %q", r.code, r.stderr)
	r = cli(2, "member", "add", "4", "--client", joiner.client)
	if !strings.Contains(r.stderr, "--peer") {
		t.Errorf("member add without --peer: stderr should name --peer:\n%s", r)
	}
	t.Logf("member add 4 without --peer: exit %d, stderr %q", r.code, r.stderr)

	// A real change through the CLI: member 4 joins as a learner, is
	// promoted, and is removed again (its process exits with status 0).
	c.join(joiner, c.members[:3])
	r = cli(0, "member", "add-learner", "4", "--peer", joiner.peer, "--client", joiner.client)
	checkMemberTable(t, r, c.members, 0, 4)
	c.waitCaughtUp(joiner, c.waitLeaderOf(10*time.Second, c.members[:3]), 20*time.Second)
	r = cli(0, "member", "promote", "4")
	checkMemberTable(t, r, c.members, 0, 0)
	r = cli(0, "member", "remove", "4")
	checkMemberTable(t, r, c.members[:3], 0, 0)
	c.waitRemoved(joiner, 15*time.Second)

	// Hand leadership to member 2 (away from it first if it leads).
	if leader = c.waitLeaderOf(10*time.Second, c.members[:3]); leader.id == 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if to, err := adminClient(c).LeaderTransfer(ctx, 1); err != nil || to != 1 {
			t.Fatalf("LeaderTransfer(1) from leader 2 = %d, %v", to, err)
		}
	}
	r = cli(0, "leader", "transfer", "--to", "2")
	if r.stdout != "member 2 leads\n" {
		t.Errorf("leader transfer --to 2 printed %q, want %q", r.stdout, "member 2 leads\n")
	}
	if now := c.waitLeaderOf(10*time.Second, c.members[:3]); now.id != 2 {
		t.Errorf("after leader transfer --to 2, %v leads", now)
	}
	checkMemberTable(t, cli(0, "member", "list"), c.members[:3], 2, 0)
}

// checkMemberTable checks the table `flotilla member ...` prints: a header
// and one row per member of want, in order, with its role (the leader's
// marked when leader is not 0, learner the ID of the one learner or 0).
func checkMemberTable(t *testing.T, r result, want []*member, leader, learner uint64) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != len(want)+1 || !regexp.MustCompile(`^ID\s+ROLE\s+PEER\s+CLIENT$`).MatchString(lines[0]) {
		t.Fatalf("want a header and %d members:\n%s", len(want), r)
	}
	for i, m := range want {
		role := "voter"
		switch m.id {
		case learner:
			role = "learner"
		case leader:
			role = "voter (leader)"
		}
		re := regexp.MustCompile(fmt.Sprintf(`^%d\s+%s\s+%s\s+%s$`, m.id, regexp.QuoteMeta(role), regexp.QuoteMeta(m.peer), regexp.QuoteMeta(m.client)))
		if !re.MatchString(lines[i+1]) {
			t.Errorf("row %d is %q, want member %d, %s, %s, %s\n%s", i+1, lines[i+1], m.id, role, m.peer, m.client, r)
		}
	}
}
