package node

import (
	"context"
	"errors"
	"testing"
	"time"
)

// startFastCluster starts n nodes with 10 ms ticks and no fsync, stopped
// when the test ends.
func startFastCluster(t *testing.T, n int) *LocalCluster {
	t.Helper()
	c, err := StartLocalCluster(n, t.TempDir(), func(cfg *Config) { cfg.TickInterval = 10 * time.Millisecond; cfg.NoSync = true })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// ReadIndex on any member returns a read index at or after every command
// acknowledged before it, and only once that member has applied them.
func TestReadIndexIsLinearizableOnEveryMember(t *testing.T) {
	c := startFastCluster(t, 3)
	defer c.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for round := range 20 {
		l, err := c.Leader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Propose(ctx, []byte("x")); err != nil {
			t.Fatalf("round %d: Propose: %v", round, err)
		}
		acked := l.Status().Commit // at least the command's index
		for i, nd := range c.Nodes {
			for {
				idx, err := nd.ReadIndex(ctx)
				if errors.Is(err, ErrReadLost) {
					continue // a leader change; retry
				}
				if err != nil {
					t.Fatalf("round %d: ReadIndex on node %d: %v", round, i+1, err)
				}
				if idx < acked {
					t.Fatalf("round %d: node %d read index %d is before the acknowledged commit %d", round, i+1, idx, acked)
				}
				// The state machine must already hold every acknowledged
				// command: one per round so far.
				if count, _ := c.Machines[i].State(); count < uint64(round+1) {
					t.Fatalf("round %d: node %d returned from ReadIndex having applied %d commands; %d were acknowledged", round, i+1, count, round+1)
				}
				break
			}
		}
	}
}

func TestReadIndexHonoursContextAndStop(t *testing.T) {
	c := startFastCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// With both followers stopped, the leader cannot confirm a read.
	for i, nd := range c.Nodes {
		if nd != l {
			if err := c.StopNode(i + 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if _, err := l.ReadIndex(short); !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrReadLost) {
		t.Errorf("ReadIndex without a quorum = %v; want the context's deadline or ErrReadLost", err)
	}
	c.Stop()
	if _, err := l.ReadIndex(ctx); !errors.Is(err, ErrStopped) {
		t.Errorf("ReadIndex on a stopped node = %v; want ErrStopped", err)
	}
}
