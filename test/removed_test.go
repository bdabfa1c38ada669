package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// adminPeers reads which peers m's transport knows from its admin /status
// (an empty address: a node that sent messages but is not a peer).
func adminPeers(m *member) (map[uint64]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.admin+"/status", nil)
	if err != nil {
		return nil, err
	}
	// No keep-alive: no connection (and goroutine) outlives the call.
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st struct {
		Peers map[uint64]struct {
			Addr string `json:"addr"`
		} `json:"peers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("/status of %v: %w", m, err)
	}
	out := map[uint64]string{}
	for id, p := range st.Peers {
		out[id] = p.Addr
	}
	return out, nil
}

// TestRemovedWhileDownExits removes a member while it is stopped and then
// restarts it on its data directory. It no longer belongs to the cluster
// but does not know it: it campaigns, and the leader must answer a
// (pre-)vote from a node outside its configuration with the committed log
// (docs/raft.md, "A removed follower has to learn of its removal"), so that
// it applies its removal and exits with status 0 on its own.
//
// The test waits until the remaining members' transports have dropped the
// removed member (node.dropRemovedPeers, one election timeout after the
// removal applied) before the restart, as happens whenever a member is
// down for longer than that.
func TestRemovedWhileDownExits(t *testing.T) {
	c := newCluster(t, 3, 8181)
	leader := c.waitLeader(20 * time.Second)
	gone := without(c.members, leader)[0]
	stay := without(c.members, gone)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := c.client(stay...)
	if _, err := cl.Put(ctx, []byte("before"), []byte("removal")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	c.stop(gone)
	if _, err := cl.MemberRemove(ctx, gone.id); err != nil {
		t.Fatalf("MemberRemove(%d) while it is stopped: %v", gone.id, err)
	}
	for _, m := range stay {
		poll(t, 10*time.Second, fmt.Sprintf("%v dropping member %d from its transport", m, gone.id), func() (bool, string) {
			peers, err := adminPeers(m)
			if err != nil {
				return false, err.Error()
			}
			return peers[gone.id] == "", fmt.Sprintf("peers %v", peers)
		})
	}
	c.mark(gone, "restart of member %d after its removal", gone.id)
	c.start(gone)
	exit := c.waitRemoved(gone, 10*time.Second)
	t.Logf("member %d, removed while stopped, exited with status 0 %v after its restart", gone.id, exit.Round(time.Millisecond))
	c.waitConvergedOf(20*time.Second, stay)
	checkMembers(t, c.client(stay...), stay)
}
