package node

// Adversarial tests written during a correctness review of node/.
//
// The first three crash, stop and restart nodes under load and check that no
// acknowledged write is lost, that every reply belongs to the proposal that
// asked for it, that replicas converge, that ErrProposalLost really means
// "not applied", and that no entry is applied twice on one state machine.
//
// The others pin bugs the review found, now fixed: oversize commands that
// wedged or killed the cluster, a Stop that could deadlock on a snapshot
// report, and proposals overwritten by a new leader that were never
// answered.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/raft"
)

// TestReviewCrashRestartUnderLoad crashes or stops one node at a time while
// 16 clients write, then crashes the whole cluster at once and restarts it.
// No acknowledged command may be lost on any replica.
func TestReviewCrashRestartUnderLoad(t *testing.T) {
	c := newRVCluster(t, 3, func(cfg *Config) { cfg.SnapshotEntries = 100 })
	c.waitLeader(5 * time.Second)
	var o outcomes
	stop := make(chan struct{})
	wg := c.runClients(16, "a", stop, &o)
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		waitProgress(t, &o, 30, 5*time.Second)
		id := 1 + rng.IntN(3)
		if round%3 == 0 {
			// Prefer the leader: it holds the waiters.
			if l := c.leader(); l != nil {
				id = int(l.Status().ID)
			}
		}
		if round%2 == 0 {
			c.crash(id)
		} else {
			c.stop(id)
		}
		waitProgress(t, &o, 30, 5*time.Second)
		if err := c.restart(id); err != nil {
			t.Fatal(err)
		}
	}
	waitProgress(t, &o, 30, 5*time.Second)
	close(stop)
	wg.Wait()
	c.checkConverged(&o, 10*time.Second)

	// The whole cluster dies at once and comes back from its disks.
	for id := 1; id <= 3; id++ {
		c.crash(id)
	}
	for id := 1; id <= 3; id++ {
		if err := c.restart(id); err != nil {
			t.Fatal(err)
		}
	}
	c.waitLeader(5 * time.Second)
	c.checkConverged(&o, 10*time.Second)
}

// TestReviewLaggingFollowerRestartLoop keeps crashing a follower that lags
// behind the leader's snapshots, sometimes right after it restarted (while it
// may be receiving or installing a snapshot).
func TestReviewLaggingFollowerRestartLoop(t *testing.T) {
	c := newRVCluster(t, 3, func(cfg *Config) { cfg.SnapshotEntries = 25 })
	c.waitLeader(5 * time.Second)
	var o outcomes
	stop := make(chan struct{})
	wg := c.runClients(8, "b", stop, &o)
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 10 {
		l := c.waitLeader(5 * time.Second)
		victim := 1 + (int(l.Status().ID) % 3) // a follower
		c.crash(victim)
		waitProgress(t, &o, 80, 5*time.Second) // > SnapshotEntries: it needs a snapshot
		if err := c.restart(victim); err != nil {
			t.Fatal(err)
		}
		if round%2 == 1 {
			// Let it catch up (by snapshot: it is more than
			// SnapshotEntries behind) before the next round.
			c.waitCaughtUp(victim, 5*time.Second)
		} else {
			// Crash it again soon, possibly mid-transfer or mid-install.
			<-time.After(time.Duration(rng.IntN(60)) * time.Millisecond)
			c.crash(victim)
			if err := c.restart(victim); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitProgress(t, &o, 30, 5*time.Second)
	close(stop)
	wg.Wait()
	c.checkConverged(&o, 10*time.Second)
	installs := c.installs.Load()
	ns, _ := c.running()
	for _, n := range ns {
		installs += n.wal.Stats().SnapshotsInstalled
	}
	t.Logf("%d snapshots installed from a leader", installs)
	if installs == 0 {
		t.Errorf("no node installed a snapshot from a leader; the test did not exercise snapshot transfer")
	}
}

// TestReviewStopRacesProposals stops the leader while 32 proposers wait on it
// with no deadline of their own: each of them must return promptly, with its
// own result or an error, and nothing acknowledged may be lost.
func TestReviewStopRacesProposals(t *testing.T) {
	c := newRVCluster(t, 3, func(cfg *Config) { cfg.SnapshotEntries = 200 })
	var o outcomes
	for round := range 3 {
		l := c.waitLeader(5 * time.Second)
		id := int(l.Status().ID)
		var wg sync.WaitGroup
		var started atomic.Int64
		ctx, cancel := context.WithCancel(context.Background())
		for w := range 32 {
			wg.Go(func() {
				for i := 0; ctx.Err() == nil; i++ {
					data := fmt.Sprintf("s%d-%d-%d", round, w, i)
					started.Add(1)
					res, err := l.Propose(ctx, []byte(data))
					switch {
					case err == nil:
						if string(res) != data {
							t.Errorf("proposal %q got %q", data, res)
						}
						o.add(&o.acked, data)
						o.n.Add(1)
					case errors.Is(err, ErrStopped):
						o.add(&o.stopped, data)
						return
					case errors.Is(err, ErrProposalLost):
						o.add(&o.lost, data)
					case errors.Is(err, raft.ErrNotLeader), errors.Is(err, ErrOutcomeUnknown), errors.Is(err, context.Canceled):
					default:
						t.Errorf("proposal %q: unexpected error %v", data, err)
					}
				}
			})
		}
		waitProgress(t, &o, 200, 5*time.Second)
		// Stop concurrently from two goroutines, with Status calls racing.
		n := c.take(id)
		var sw sync.WaitGroup
		for range 2 {
			sw.Go(func() { n.Stop() })
			sw.Go(func() { _ = n.Status() })
		}
		done := make(chan struct{})
		go func() { wg.Wait(); sw.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cancel()
			<-done
			t.Fatalf("round %d: proposers or Stop still blocked 5 s after Stop", round)
		}
		cancel()
		if _, err := n.Propose(context.Background(), []byte("late")); !errors.Is(err, ErrStopped) {
			t.Errorf("Propose after Stop: got %v, want ErrStopped", err)
		}
		if err := c.restart(id); err != nil {
			t.Fatal(err)
		}
	}
	c.waitLeader(5 * time.Second)
	c.checkConverged(&o, 10*time.Second)
}

// TestReviewReproOversizeCommandWedgesCluster: a command larger than the
// transport's frame limit (4 MiB) is accepted by Propose, appended by the
// leader and then dropped by the transport on every retransmission, so no
// follower ever gets it and nothing after it commits, while heartbeats keep
// the leader in office.
func TestReviewOversizeCommandWedgesCluster(t *testing.T) {
	c := newRVCluster(t, 3, nil)
	l := c.waitLeader(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := l.Propose(ctx, []byte("small")); err != nil {
		t.Fatalf("small proposal before: %v", err)
	}
	big := bytes.Repeat([]byte{'x'}, 5<<20)
	_, err := l.Propose(ctx, big)
	if !errors.Is(err, ErrCommandTooLarge) {
		t.Errorf("5 MiB proposal: got %v, want ErrCommandTooLarge", err)
	}
	t.Logf("5 MiB proposal: %v", err)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel2()
	if _, err := l.Propose(ctx2, []byte("small after")); err != nil {
		st := l.Status()
		t.Errorf("a 5 MiB command wedged the cluster: a small proposal after it failed with %v (leader %d still leads: role %v, commit %d, last %d)",
			err, st.ID, st.Role, st.Commit, st.LastIndex)
	}
}

// TestReviewReproHugeCommandKillsLeader: a command above wal.MaxEntryBytes
// makes the leader's WAL write fail with ErrInvalid, which the loop treats
// as fatal: one client request stops the leader (and, retried, the next).
func TestReviewHugeCommandKillsLeader(t *testing.T) {
	c := newRVCluster(t, 3, nil)
	l := c.waitLeader(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := l.Propose(ctx, make([]byte, 65<<20))
	if !errors.Is(err, ErrCommandTooLarge) {
		t.Errorf("65 MiB proposal: got %v, want ErrCommandTooLarge", err)
	}
	select {
	case <-l.Done():
		t.Errorf("the leader stopped because of one oversize client command: %v", l.Err())
	case <-time.After(500 * time.Millisecond):
	}
}

// TestReviewReproStopDeadlocksOnSnapshotReport: the transport's reporter
// goroutine blocks in handler.ReportSnapshot while reportc is full, waiting
// for n.done; the loop's exit path calls tr.Close, which waits for that
// goroutine, before it closes n.done. Stop then never returns. reportc is
// filled by hand here (in production it takes 1024 queued reports, e.g.
// while the loop is stuck in a long Apply or Snapshot); the loop's select
// picks stopc or reportc at random, so the test tries several nodes.
func TestReviewStopDeadlocksOnSnapshotReport(t *testing.T) {
	deadlocked := 0
	for try := range 8 {
		addrs, err := FreeAddrs(1)
		if err != nil {
			t.Fatal(err)
		}
		entered, release := make(chan struct{}), make(chan struct{})
		sm := newRecMachine()
		sm.block = func(c Command) {
			if string(c.Data) == "block" {
				close(entered)
				<-release
			}
		}
		n, err := Start(Config{
			ID: 1, ClusterID: 7, Peers: map[uint64]string{1: addrs[0]},
			DataDir:      filepath.Join(t.TempDir(), "n"),
			TickInterval: 10 * time.Millisecond, Seed: uint64(try + 1),
			Logger: slog.New(slog.DiscardHandler),
		}, sm)
		if err != nil {
			t.Fatal(err)
		}
		for n.Status().Role != raft.RoleLeader {
			<-time.After(5 * time.Millisecond)
		}
		go n.Propose(context.Background(), []byte("block"))
		<-entered // the loop is inside Apply
		stopped := make(chan struct{})
		go func() { n.Stop(); close(stopped) }()
		for len(n.reportc) < cap(n.reportc) {
			n.reportc <- report{id: 99}
		}
		// A MsgSnap to an unknown peer makes the reporter call
		// ReportSnapshot(99, false), which now blocks.
		n.tr.Send([]raft.Message{{Type: raft.MsgSnap, From: 1, To: 99, Term: 1,
			Snapshot: &raft.Snapshot{Meta: raft.SnapshotMeta{Index: 1, Term: 1}}}})
		waitForStack(t, "node.handler.ReportSnapshot")
		close(release)
		select {
		case <-stopped:
		case <-time.After(2 * time.Second):
			deadlocked++
			// Unwedge it so that the test leaks nothing.
			for {
				select {
				case <-n.reportc:
					continue
				case <-stopped:
				}
				break
			}
		}
	}
	if deadlocked > 0 {
		t.Errorf("Stop deadlocked in %d of 8 tries", deadlocked)
	}
}

// waitForStack waits until some goroutine's stack contains fn.
func waitForStack(t *testing.T, fn string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	buf := make([]byte, 1<<20)
	for {
		if k := runtime.Stack(buf, true); strings.Contains(string(buf[:k]), fn) {
			return
		}
		select {
		case <-deadline:
			t.Fatalf("no goroutine in %s", fn)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// partition cuts node id off from every other running node, both ways, by
// removing the peers from the transports; heal undoes it.
func (c *rvCluster) partition(id int) {
	ns, _ := c.running()
	for _, n := range ns {
		other := int(n.cfg.ID)
		if other == id {
			for p := range n.cfg.Peers {
				n.tr.RemovePeer(p)
			}
		} else {
			n.tr.RemovePeer(uint64(id))
		}
	}
}

func (c *rvCluster) heal(id int) {
	ns, _ := c.running()
	for _, n := range ns {
		other := int(n.cfg.ID)
		if other == id {
			for p, addr := range n.cfg.Peers {
				n.tr.AddPeer(p, addr)
			}
		} else {
			n.tr.AddPeer(uint64(id), n.cfg.Peers[uint64(id)])
		}
	}
}

// pollUntil polls cond every 5 ms until it holds or d passes.
func pollUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(d)
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s", d, what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestReviewReproLostProposalsHang: a leader cut off from the cluster
// accepts three proposals; a new leader takes over and its no-op overwrites
// the first slot. After the partition heals, the old leader's log holds none
// of the three entries and never will (the committed log's terms only grow),
// yet only the first proposal is answered (ErrProposalLost); the other two
// wait for a command that will never commit until their context ends (for
// ever with context.Background), and their waiters stay in n.waiters.
func TestReviewLostProposalsHang(t *testing.T) {
	c := newRVCluster(t, 3, nil)
	l := c.waitLeader(5 * time.Second)
	a := int(l.Status().ID)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := l.Propose(ctx, []byte("warm")); err != nil {
		t.Fatal(err)
	}
	before := l.Status().LastIndex
	c.partition(a)
	results := make(chan error, 3)
	for i := range 3 {
		go func() {
			_, err := l.Propose(ctx, fmt.Appendf(nil, "p%d", i))
			results <- err
		}()
	}
	pollUntil(t, 2*time.Second, "the old leader to append the proposals", func() bool {
		return l.Status().LastIndex >= before+3
	})
	var nl *Node
	pollUntil(t, 5*time.Second, "a new leader", func() bool {
		ns, _ := c.running()
		for _, n := range ns {
			if n != l && n.Status().Role == raft.RoleLeader {
				nl = n
				return true
			}
		}
		return false
	})
	c.heal(a)
	pollUntil(t, 5*time.Second, "the old leader to follow the new one and apply its no-op", func() bool {
		st := l.Status()
		return st.Role == raft.RoleFollower && st.Lead == nl.Status().ID && st.Applied >= before+1
	})
	st := l.Status()
	t.Logf("old leader now: term %d, commit %d, last index %d (proposals were at %d..%d)", st.Term, st.Commit, st.LastIndex, before+1, before+3)
	answered := 0
	deadline := time.After(3 * time.Second)
wait:
	for answered < 3 {
		select {
		case err := <-results:
			t.Logf("answered: %v", err)
			answered++
		case <-deadline:
			break wait
		}
	}
	if answered < 3 {
		t.Errorf("%d of 3 proposals whose slots were overwritten are still waiting 3 s after the old leader learned it", 3-answered)
	}
	cancel()
	for ; answered < 3; answered++ {
		<-results
	}
}
