package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/raft"
)

func TestTransferLeadership(t *testing.T) {
	c := startFastCluster(t, 3)
	defer c.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for round := range 3 {
		l, err := c.Leader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Propose(ctx, []byte("x")); err != nil {
			t.Fatal(err)
		}
		before := l.Status()
		to := before.ID%3 + 1
		if err := l.TransferLeadership(ctx, to); err != nil {
			t.Fatalf("round %d: TransferLeadership(%d) from %d: %v", round, to, before.ID, err)
		}
		// The target won the very next term: it campaigned when told to,
		// not after an election timeout of its own or anyone else's.
		st := c.Nodes[to-1].Status()
		if st.Role != raft.RoleLeader || st.Term != before.Term+1 {
			t.Fatalf("round %d: after the transfer node %d is %v in term %d; want leader in term %d", round, to, st.Role, st.Term, before.Term+1)
		}
	}
	l, _ := c.Leader(ctx)
	if err := l.TransferLeadership(ctx, l.Status().ID); err == nil {
		t.Error("TransferLeadership to the leader itself succeeded")
	}
	for _, nd := range c.Nodes {
		if nd != l {
			var nle *NotLeaderError
			if err := nd.TransferLeadership(ctx, 1); !errors.As(err, &nle) {
				t.Errorf("TransferLeadership on a follower = %v; want a *NotLeaderError", err)
			}
			break
		}
	}
}

// Stopping the leader hands its role over first: the next leader wins the
// next term, so a planned restart costs no election timeout.
func TestStopHandsLeadershipOver(t *testing.T) {
	c := startFastCluster(t, 3)
	defer c.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Propose(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	before := l.Status()
	if err := c.StopNode(int(before.ID)); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	next, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st := next.Status(); st.Term != before.Term+1 {
		t.Errorf("after the leader stopped, node %d leads term %d; want term %d (a hand-over, not an election timeout)", st.ID, st.Term, before.Term+1)
	}
}
