package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/raft"
	"github.com/flotilla-dev/flotilla/wal"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// proposeAll proposes count commands through whichever node leads, from
// workers goroutines, retrying on leader changes. It returns the number of
// acknowledged commands.
func proposeAll(t *testing.T, c *LocalCluster, prefix string, count, workers int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	acked := 0
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				data := fmt.Appendf(nil, "%s-%d", prefix, i)
				for {
					l, err := c.Leader(ctx)
					if err != nil {
						t.Errorf("command %d: %v", i, err)
						return
					}
					_, err = l.Propose(ctx, data)
					if err == nil {
						mu.Lock()
						acked++
						mu.Unlock()
						break
					}
					if ctx.Err() != nil {
						t.Errorf("command %d: %v", i, err)
						return
					}
					// Not the leader any more, lost to a leader change, or
					// the node stopped: try again. (An unknown outcome may
					// apply a command twice; convergence is checked on
					// "at least", so that is harmless here.)
					if !errors.Is(err, raft.ErrNotLeader) && !errors.Is(err, ErrProposalLost) &&
						!errors.Is(err, ErrOutcomeUnknown) && !errors.Is(err, ErrStopped) {
						t.Errorf("command %d: unexpected error %v", i, err)
						return
					}
				}
			}
		})
	}
	for i := range count {
		next <- i
	}
	close(next)
	wg.Wait()
	return acked
}

// waitConverged waits until every running node applied the same number of
// commands with the same hash, at least min of them.
func waitConverged(t *testing.T, c *LocalCluster, min uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var counts, hashes []uint64
		same := true
		for i, m := range c.Machines {
			if c.Nodes[i] == nil {
				continue
			}
			n, h := m.State()
			counts, hashes = append(counts, n), append(hashes, h)
			if n != counts[0] || h != hashes[0] || n < min {
				same = false
			}
		}
		if same {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas did not converge: counts %v hashes %x (want at least %d)", counts, hashes, min)
		}
		<-time.After(10 * time.Millisecond)
	}
}

func TestThreeNodesTCP(t *testing.T) {
	c, err := StartLocalCluster(3, t.TempDir(), func(cfg *Config) { cfg.SnapshotEntries = 2000 })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if got := proposeAll(t, c, "a", 10000, 64); got != 10000 {
		t.Fatalf("%d of 10000 commands acknowledged", got)
	}
	waitConverged(t, c, 10000)
	for i, n := range c.Nodes {
		if s := n.Metrics().Snapshot(); s.Snapshots == 0 {
			t.Errorf("node %d took no snapshot after 10000 commands with SnapshotEntries=2000", i+1)
		}
	}
}

func TestCrashRestartConverges(t *testing.T) {
	c, err := StartLocalCluster(3, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if got := proposeAll(t, c, "a", 1000, 16); got != 1000 {
		t.Fatalf("%d of 1000 acknowledged", got)
	}
	// Kill the leader without a clean shutdown, keep writing, restart it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id := int(l.Status().ID)
	c.CrashNode(id)
	if got := proposeAll(t, c, "b", 1000, 16); got != 1000 {
		t.Fatalf("%d of 1000 acknowledged with node %d down", got, id)
	}
	if err := c.Restart(id); err != nil {
		t.Fatalf("restarting node %d: %v", id, err)
	}
	waitConverged(t, c, 2000)
}

func TestLaggingNodeCatchesUpBySnapshot(t *testing.T) {
	c, err := StartLocalCluster(3, t.TempDir(), func(cfg *Config) { cfg.SnapshotEntries = 200 })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if err := c.StopNode(3); err != nil {
		t.Fatal(err)
	}
	if got := proposeAll(t, c, "a", 2000, 16); got != 2000 {
		t.Fatalf("%d of 2000 acknowledged", got)
	}
	for _, id := range []int{1, 2} {
		if st := c.Nodes[id-1].Status(); st.SnapshotIndex < 1000 {
			t.Fatalf("node %d compacted only to %d", id, st.SnapshotIndex)
		}
	}
	if err := c.Restart(3); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, c, 2000)
	if st := c.Nodes[2].Status(); st.SnapshotIndex == 0 {
		t.Errorf("node 3 caught up without installing a snapshot (status %+v)", st)
	}
}

func TestRefusesOtherClustersDataDir(t *testing.T) {
	dir := t.TempDir()
	c, err := StartLocalCluster(1, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.Configs[0]
	c.Stop()
	cfg.ClusterID++
	n, err := Start(cfg, &HashMachine{})
	if err == nil {
		n.Stop()
		t.Fatal("a node started on another cluster's data directory")
	}
	if !errors.Is(err, wal.ErrClusterMismatch) {
		t.Fatalf("got %v, want an error wrapping wal.ErrClusterMismatch", err)
	}
	t.Logf("refused as expected: %v", err)
}

func TestProposeOnFollowerNamesLeader(t *testing.T) {
	c, err := StartLocalCluster(3, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lid := l.Status().ID
	for _, n := range c.Nodes {
		if n == l {
			continue
		}
		_, err := n.Propose(ctx, []byte("x"))
		var nl *NotLeaderError
		if !errors.As(err, &nl) {
			t.Fatalf("follower: got %v, want *NotLeaderError", err)
		}
		if nl.Leader != 0 && (nl.Leader != lid || nl.LeaderAddr != c.Configs[lid-1].Peers[lid]) {
			t.Errorf("follower names leader %d at %q, want %d at %q", nl.Leader, nl.LeaderAddr, lid, c.Configs[lid-1].Peers[lid])
		}
	}
}
