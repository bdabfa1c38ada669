package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/raft"
)

// changeMembership retries a change through leader changes and pending
// changes until it is applied.
func changeMembership(ctx context.Context, t *testing.T, c *LocalCluster, ch MembershipChange) {
	t.Helper()
	for {
		l, err := c.Leader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		err = l.ChangeMembership(ctx, ch)
		if err == nil {
			return
		}
		if ctx.Err() != nil || !(errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrConfChangePending) ||
			errors.Is(err, ErrProposalLost) || errors.Is(err, ErrStopped) || errors.Is(err, ErrOutcomeUnknown)) {
			t.Fatalf("ChangeMembership(%+v): %v", ch, err)
		}
	}
}

func memberIDs(ms []Member) (voters, learners []uint64) {
	for _, m := range ms {
		if m.Learner {
			learners = append(learners, m.ID)
		} else {
			voters = append(voters, m.ID)
		}
	}
	return voters, learners
}

// Grow a 3-node group to 5 through a learner and a direct voter, replace
// two voters in one joint change, remove the leader, and check that every
// member applies every command and knows every address.
func TestMembershipChanges(t *testing.T) {
	c := startFastCluster(t, 3)
	defer c.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	proposeAll(t, c, "a", 50, 4)

	id4, addr4, err := c.StartJoiner()
	if err != nil {
		t.Fatal(err)
	}
	changeMembership(ctx, t, c, MembershipChange{Add: []Member{{ID: id4, PeerAddr: addr4, Meta: []byte("meta4"), Learner: true}}})
	changeMembership(ctx, t, c, MembershipChange{Promote: []uint64{id4}})
	id5, addr5, err := c.StartJoiner()
	if err != nil {
		t.Fatal(err)
	}
	changeMembership(ctx, t, c, MembershipChange{Add: []Member{{ID: id5, PeerAddr: addr5}}})
	proposeAll(t, c, "b", 50, 4)

	// Replace voters 2 and 3 by 6 and 7 in one (joint) change.
	id6, addr6, _ := c.StartJoiner()
	id7, addr7, _ := c.StartJoiner()
	changeMembership(ctx, t, c, MembershipChange{Add: []Member{{ID: id6, PeerAddr: addr6}, {ID: id7, PeerAddr: addr7}}, Remove: []uint64{2, 3}})
	// Remove whoever leads the new configuration (the old leader may have
	// been one of the voters just removed, and steps down).
	var lead uint64
	for lead == 0 || lead == 2 || lead == 3 {
		l, err := c.Leader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		lead = l.Status().ID
	}
	changeMembership(ctx, t, c, MembershipChange{Remove: []uint64{lead}})
	proposeAll(t, c, "c", 50, 4)

	want := []uint64{1, 4, 5, 6, 7}
	want = slices.DeleteFunc(want, func(id uint64) bool { return id == lead })
	// The removed nodes stop on their own with ErrRemoved.
	for _, id := range []uint64{2, 3, lead} {
		select {
		case <-c.Nodes[id-1].Done():
			if err := c.Nodes[id-1].Err(); !errors.Is(err, ErrRemoved) {
				t.Errorf("removed node %d stopped with %v, want ErrRemoved", id, err)
			}
		case <-ctx.Done():
			st := c.Nodes[id-1].Status()
			var others []string
			for _, nd := range c.Nodes {
				if nd != nil {
					s := nd.Status()
					others = append(others, fmt.Sprintf("%d:%v t%d c%d a%d %v", s.ID, s.Role, s.Term, s.Commit, s.Applied, s.Config))
				}
			}
			t.Fatalf("removed node %d did not stop: %v term %d commit %d applied %d config %v; all: %v", id, st.Role, st.Term, st.Commit, st.Applied, st.Config, others)
		}
		c.Nodes[id-1] = nil
	}
	// A member that joined restarts as one: it replays the configurations
	// from before it was added without taking them for its removal.
	if err := c.StopNode(int(id6)); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(int(id6)); err != nil {
		t.Fatal(err)
	}
	proposeAll(t, c, "d", 20, 2)
	select {
	case <-c.Nodes[id6-1].Done():
		t.Fatalf("node %d stopped after its restart: %v", id6, c.Nodes[id6-1].Err())
	default:
	}
	// Every remaining member converges and knows the same members.
	for {
		var states []string
		for _, id := range want {
			count, hash := c.Machines[id-1].State()
			states = append(states, fmt.Sprintf("%d:%x", count, hash))
		}
		if len(slices.Compact(slices.Clone(states))) == 1 && states[0] != "0:0" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("members did not converge: %v", states)
		case <-time.After(10 * time.Millisecond): // poll until the deadline
		}
	}
	for _, id := range want {
		voters, learners := memberIDs(c.Nodes[id-1].Members())
		if !slices.Equal(voters, want) || len(learners) != 0 {
			t.Errorf("node %d sees voters %v learners %v, want voters %v", id, voters, learners, want)
		}
	}
	for _, m := range c.Nodes[want[0]-1].Members() {
		if m.ID == id4 && string(m.Meta) != "meta4" {
			t.Errorf("member 4's metadata is %q, want meta4", m.Meta)
		}
	}
}

// With AutoPromoteLearners the leader promotes a learner on its own once it
// has caught up.
func TestLearnerAutoPromotion(t *testing.T) {
	c, err := StartLocalCluster(3, t.TempDir(), func(cfg *Config) {
		cfg.TickInterval, cfg.NoSync, cfg.AutoPromoteLearners, cfg.PromoteLagEntries = 10*time.Millisecond, true, true, 5
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	proposeAll(t, c, "a", 100, 4)
	id, addr, err := c.StartJoiner()
	if err != nil {
		t.Fatal(err)
	}
	changeMembership(ctx, t, c, MembershipChange{Add: []Member{{ID: id, PeerAddr: addr, Learner: true}}})
	for {
		l, err := c.Leader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if voters, _ := memberIDs(l.Members()); slices.Contains(voters, id) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("learner %d was not promoted: members %+v", id, l.Members())
		case <-time.After(10 * time.Millisecond): // poll until the deadline
		}
	}
}
