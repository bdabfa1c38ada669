package test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/flotilla-dev/flotilla/kv/kvclient"
)

// writeBound is how long a single write may take (the client retries it
// through elections and membership changes meanwhile) and how long writes
// may stall after a step.
const writeBound = 15 * time.Second

// writers are loadClients goroutines writing distinct keys (values derived
// from the key, loadValue) until stopped, each through its own client of
// every member the cluster will ever have.
type writers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	acked  map[string]time.Time // key -> when its Put returned success
	failed []string             // writes that failed before the stop (not acknowledged)
}

// startWriters starts the writers on c.
func startWriters(c *cluster) *writers {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &writers{cancel: cancel, acked: map[string]time.Time{}}
	for i := range loadClients {
		cl := c.client()
		w.wg.Go(func() { w.write(ctx, cl, i) })
	}
	return w
}

func (w *writers) write(ctx context.Context, cl *kvclient.Client, writer int) {
	for seq := 0; ctx.Err() == nil; seq++ {
		key := fmt.Sprintf("%sw%d-%06d", keyPrefix, writer, seq)
		wctx, cancel := context.WithTimeout(ctx, writeBound)
		_, err := cl.Put(wctx, []byte(key), []byte(loadValue(key)))
		cancel()
		w.mu.Lock()
		switch {
		case err == nil:
			w.acked[key] = time.Now()
		case ctx.Err() == nil: // not cut short by stop
			w.failed = append(w.failed, fmt.Sprintf("%s: %v", key, err))
		}
		w.mu.Unlock()
	}
}

// count returns how many writes were acknowledged so far.
func (w *writers) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// continueAcks is how many writes must be acknowledged after a step
// before the next one starts, so that every step runs under load and
// writes are seen to go on after it.
const continueAcks = 100

// waitAcksAfter polls until n writes were acknowledged after at; what
// says after what.
func (w *writers) waitAcksAfter(t *testing.T, at time.Time, n int, what string) {
	t.Helper()
	poll(t, writeBound, fmt.Sprintf("%d writes acknowledged %s", n, what), func() (bool, string) {
		w.mu.Lock()
		defer w.mu.Unlock()
		since := 0
		for _, a := range w.acked {
			if a.After(at) {
				since++
			}
		}
		return since >= n, fmt.Sprintf("%d acknowledged in all, %d of them since %v ago, %d failed", len(w.acked), since, time.Since(at).Round(time.Millisecond), len(w.failed))
	})
}

// stop stops the writers (writes in flight are abandoned, not counted)
// and returns the acknowledged writes and the failures before the stop.
// It is safe to call more than once.
func (w *writers) stop() (map[string]time.Time, []string) {
	w.cancel()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.acked), slices.Clone(w.failed)
}

// longestStall is the longest time between two consecutive
// acknowledgements.
func longestStall(acked map[string]time.Time) time.Duration {
	ats := make([]time.Time, 0, len(acked))
	for _, at := range acked {
		ats = append(ats, at)
	}
	sort.Slice(ats, func(i, j int) bool { return ats[i].Before(ats[j]) })
	var stall time.Duration
	for i := 1; i < len(ats); i++ {
		stall = max(stall, ats[i].Sub(ats[i-1]))
	}
	return stall
}

// adminClient is a client of every member of c for membership changes.
// Its attempts are long: a change whose attempt times out is retried, and
// the retry of a change that was in fact made fails ("a learner already").
func adminClient(c *cluster) *kvclient.Client {
	c.t.Helper()
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.client)
	}
	cl, err := kvclient.New(kvclient.Config{Endpoints: eps, AttemptTimeout: 5 * time.Second})
	if err != nil {
		c.t.Fatalf("admin client: %v", err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

func opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

func ids(ms []*member) string {
	var s []string
	for _, m := range ms {
		s = append(s, fmt.Sprint(m.id))
	}
	return "{" + strings.Join(s, ",") + "}"
}

// listed shows a member list as IDs, learners marked.
func listed(ms []kvclient.Member) string {
	var s []string
	for _, m := range ms {
		if m.Learner {
			s = append(s, fmt.Sprintf("%d(learner)", m.ID))
		} else {
			s = append(s, fmt.Sprint(m.ID))
		}
	}
	return "{" + strings.Join(s, ",") + "}"
}

func without(ms []*member, drop ...*member) []*member {
	return slices.DeleteFunc(slices.Clone(ms), func(m *member) bool { return slices.Contains(drop, m) })
}

// TestMembershipUnderLoad changes the membership of a 3-member cluster
// (fsync on) while 8 clients write continuously: it grows it to 5 members
// (each joins, is added as a learner, catches up and is promoted), swaps
// two voters — the leader and a follower — for two new members in one
// joint change, shrinks it back to 3 one removal at a time, and hands
// leadership to each of the other two voters in turn. Removed members must exit with status 0 on their own
// and writes must continue after every step. At the end every
// acknowledged write must be on every remaining member, the members must
// have applied the same log to the same state, and the member list must
// hold exactly the 3 voters left.
func TestMembershipUnderLoad(t *testing.T) {
	began := time.Now()
	c := newCluster(t, 3, 5151)
	c.reserve(4) // members 4-7, started with --join below
	voters := slices.Clone(c.members[:3])
	c.waitLeader(20 * time.Second)
	admin := adminClient(c)
	w := startWriters(c)
	defer w.stop()
	w.waitAcksAfter(t, time.Now(), continueAcks, "once the load starts")
	t.Logf("cluster of 3 up and under load after %v", time.Since(began).Round(time.Millisecond))

	step := func(name string, do func()) {
		t.Helper()
		start, before := time.Now(), w.count()
		do()
		done, during := time.Now(), w.count()-before
		w.waitAcksAfter(t, done, continueAcks, "after "+name)
		t.Logf("STEP %s: %v, %d writes acknowledged meanwhile; %d more within %v after it (%d in all); voters now %s",
			name, done.Sub(start).Round(time.Millisecond), during, continueAcks, time.Since(done).Round(time.Millisecond), w.count(), ids(voters))
	}

	step("grow 3 -> 5", func() {
		for _, m := range c.members[3:5] {
			growOne(t, c, admin, m, voters)
			voters = append(voters, m)
		}
	})
	step("joint replace", func() {
		voters = jointReplace(t, c, admin, voters, c.members[5:7])
	})
	step("shrink 5 -> 3", func() {
		final := slices.Clone(voters[len(voters)-3:]) // the highest IDs stay
		for _, m := range slices.Clone(voters[:len(voters)-3]) {
			leader := c.waitLeaderOf(10*time.Second, voters)
			ctx, cancel := opCtx()
			ms, err := admin.MemberRemove(ctx, m.id)
			cancel()
			if err != nil {
				t.Fatalf("MemberRemove(%d) (leader %d): %v", m.id, leader.id, err)
			}
			exit := c.waitRemoved(m, 15*time.Second)
			voters = without(voters, m)
			t.Logf("removed member %d (leader was %d); it exited with status 0 %v after the change returned; members %s",
				m.id, leader.id, exit.Round(time.Millisecond), listed(ms))
		}
		if !slices.Equal(voters, final) {
			t.Fatalf("voters %s, want %s", ids(voters), ids(final))
		}
	})
	// Hand leadership to each of the other two voters in turn.
	for i, to := range without(voters, c.waitLeaderOf(10*time.Second, voters)) {
		step(fmt.Sprintf("leader transfer %d (to %d)", i+1, to.id), func() {
			transferTo(t, c, admin, voters, to)
		})
	}

	start := time.Now()
	acked, failed := w.stop()
	t.Logf("writers stopped: %d writes acknowledged in %v, %d failed; longest gap between acknowledgements %v",
		len(acked), time.Since(began).Round(time.Millisecond), len(failed), longestStall(acked).Round(time.Millisecond))
	if len(failed) > 0 {
		t.Errorf("%d writes failed although each had %v to get through; first: %v", len(failed), writeBound, failed[:min(5, len(failed))])
	}
	for _, m := range voters {
		checkMemberHas(t, c, m, acked)
	}
	c.waitConvergedOf(20*time.Second, voters)
	checkMembers(t, admin, voters)
	t.Logf("STEP final checks: %v; whole test %v", time.Since(start).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// growOne starts m with --join, adds it as a learner, waits until it
// caught up with the leader and promotes it.
func growOne(t *testing.T, c *cluster, admin *kvclient.Client, m *member, voters []*member) {
	t.Helper()
	start := time.Now()
	c.join(m, voters)
	ctx, cancel := opCtx()
	defer cancel()
	ms, err := admin.MemberAdd(ctx, asMember(m, true))
	if err != nil {
		t.Fatalf("MemberAdd(learner %d): %v", m.id, err)
	}
	if i := slices.IndexFunc(ms, func(x kvclient.Member) bool { return x.ID == m.id }); i < 0 || !ms[i].Learner {
		t.Fatalf("after MemberAdd(learner %d) the members are %+v, want %d among them as a learner", m.id, ms, m.id)
	}
	added := time.Now()
	c.waitCaughtUp(m, c.waitLeaderOf(10*time.Second, voters), 20*time.Second)
	caught := time.Now()
	ms, err = admin.MemberPromote(ctx, m.id)
	if err != nil {
		t.Fatalf("MemberPromote(%d): %v", m.id, err)
	}
	if i := slices.IndexFunc(ms, func(x kvclient.Member) bool { return x.ID == m.id }); i < 0 || ms[i].Learner {
		t.Fatalf("after MemberPromote(%d) the members are %+v, want %d among them as a voter", m.id, ms, m.id)
	}
	t.Logf("member %d: added as a learner %v after its start, caught up %v later, promoted %v later",
		m.id, added.Sub(start).Round(time.Millisecond), caught.Sub(added).Round(time.Millisecond), time.Since(caught).Round(time.Millisecond))
}

// jointReplace starts the members add with --join and, in one joint
// change, adds them as voters and removes the leader and the
// lowest-numbered other voter; the removed members must exit with status
// 0. It returns the voters after the change.
func jointReplace(t *testing.T, c *cluster, admin *kvclient.Client, voters, add []*member) []*member {
	t.Helper()
	for _, m := range add {
		c.join(m, voters)
	}
	leader := c.waitLeaderOf(10*time.Second, voters)
	remove := []*member{leader, without(voters, leader)[0]}
	var addM []kvclient.Member
	for _, m := range add {
		addM = append(addM, asMember(m, false))
	}
	ctx, cancel := opCtx()
	defer cancel()
	start := time.Now()
	ms, err := admin.MemberReplace(ctx, addM, []uint64{remove[0].id, remove[1].id})
	if err != nil {
		t.Fatalf("MemberReplace(add %s, remove %s) with leader %d: %v", ids(add), ids(remove), leader.id, err)
	}
	t.Logf("MemberReplace(add %s, remove %s) with leader %d returned after %v; members %s",
		ids(add), ids(remove), leader.id, time.Since(start).Round(time.Millisecond), listed(ms))
	for _, m := range remove {
		exit := c.waitRemoved(m, 15*time.Second)
		t.Logf("removed member %d exited with status 0 %v later", m.id, exit.Round(time.Millisecond))
	}
	// Leadership may have moved between the Status poll and the change (an
	// election), so this is reported, not required.
	if b, _ := os.ReadFile(leader.logPath); strings.Contains(string(b), "leader removed from the configuration; stepping down") {
		t.Logf("member %d was removed while leading: it stepped down and handed over", leader.id)
	} else {
		t.Logf("member %d was no longer the leader when its removal applied (an election came between)", leader.id)
	}
	voters = append(without(voters, remove...), add...)
	slices.SortFunc(voters, func(a, b *member) int { return cmpID(a.id, b.id) })
	next := c.waitLeaderOf(10*time.Second, voters)
	t.Logf("after the joint change member %d leads", next.id)
	return voters
}

func cmpID(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// transferAttempts bounds the tries of one leadership transfer: a
// transfer is abandoned (codes.Aborted, node.ErrTransferFailed) when the
// target has not taken over within an election timeout, which a loaded
// machine can miss.
const transferAttempts = 5

// transferTo hands leadership from the current leader to the voter to
// and checks that to then leads.
func transferTo(t *testing.T, c *cluster, admin *kvclient.Client, voters []*member, to *member) {
	t.Helper()
	from := c.waitLeaderOf(10*time.Second, voters)
	if from == to {
		t.Fatalf("member %d leads already, before the transfer to it", to.id)
	}
	ctx, cancel := opCtx()
	defer cancel()
	start := time.Now()
	for attempt := 1; ; attempt++ {
		got, err := admin.LeaderTransfer(ctx, to.id)
		if err == nil {
			if got != to.id {
				t.Fatalf("LeaderTransfer(%d) from leader %d: the new leader is %d", to.id, from.id, got)
			}
			break
		}
		now := c.waitLeaderOf(10*time.Second, voters)
		t.Logf("LeaderTransfer(%d) attempt %d failed after %v: %v; member %d leads now", to.id, attempt, time.Since(start).Round(time.Millisecond), err, now.id)
		if now == to {
			// The leader gave up with its MsgTimeoutNow already on the way.
			t.Logf("NOTE: the transfer to %d was reported as failed, but %d took over", to.id, to.id)
			break
		}
		var ce *kvclient.Error
		if !errors.As(err, &ce) || ce.Code != codes.Aborted || attempt == transferAttempts {
			t.Fatalf("LeaderTransfer(%d) from leader %d, attempt %d: %v", to.id, from.id, attempt, err)
		}
	}
	took := time.Since(start)
	if now := c.waitLeaderOf(10*time.Second, voters); now != to {
		t.Fatalf("after LeaderTransfer(%d) returned, %v leads", to.id, now)
	}
	t.Logf("leadership moved from %d to %d in %v", from.id, to.id, took.Round(time.Millisecond))
}
