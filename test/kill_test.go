package test

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/kv/kvclient"
)

const (
	loadKeys    = 1000
	loadClients = 8
	// killAfter is how many acknowledged writes precede the kill.
	killAfter = 300
	// resumeBound is how long writes may stall after the leader dies.
	resumeBound = 10 * time.Second
	keyPrefix   = "load/"
)

func loadKey(i int) string { return fmt.Sprintf("%s%04d", keyPrefix, i) }

// loadValue derives a key's value from the key, so that any stored value
// can be checked on its own.
func loadValue(key string) string {
	return "value-of-" + key + "-" + strings.Repeat(key[len(key)-1:], 16)
}

// ackLog records which writes were acknowledged and when.
type ackLog struct {
	mu      sync.Mutex
	acked   map[string]time.Time // key -> when its Put returned success
	errs    []string             // writes that failed (not acknowledged)
	reached chan struct{}        // closed at the killAfter-th acknowledgement
}

func (a *ackLog) ack(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.acked[key] = time.Now()
	if len(a.acked) == killAfter {
		close(a.reached)
	}
}

func (a *ackLog) fail(key string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.errs = append(a.errs, fmt.Sprintf("%s: %v", key, err))
}

// firstAckAfter returns the earliest acknowledgement later than t.
func (a *ackLog) firstAckAfter(t time.Time) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var first time.Time
	for _, at := range a.acked {
		if at.After(t) && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first, !first.IsZero()
}

func (a *ackLog) snapshot() (map[string]time.Time, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := make(map[string]time.Time, len(a.acked))
	for k, v := range a.acked {
		m[k] = v
	}
	return m, append([]string(nil), a.errs...)
}

// TestKillLeaderUnderLoad writes 1,000 keys from 8 concurrent clients to a
// 3-member cluster with fsync on, kills the leader with SIGKILL after 300
// acknowledged writes, and checks that writes resume within resumeBound,
// that every acknowledged write is on every member once the killed member
// is back, that the members' states are identical, and that everything
// survives a clean stop and restart of the whole cluster, and then a
// kill -9 of every member and a restart.
func TestKillLeaderUnderLoad(t *testing.T) {
	c := newCluster(t, 3, 4242)
	c.waitLeader(20 * time.Second)

	acks := &ackLog{acked: map[string]time.Time{}, reached: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	next := make(chan int)
	var wg sync.WaitGroup
	for range loadClients {
		cl := c.client()
		wg.Go(func() {
			for i := range next {
				key := loadKey(i)
				wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
				_, err := cl.Put(wctx, []byte(key), []byte(loadValue(key)))
				wcancel()
				if err != nil {
					acks.fail(key, err)
					continue
				}
				acks.ack(key)
			}
		})
	}
	feedDone := make(chan struct{})
	go func() {
		defer close(feedDone)
		defer close(next)
		for i := range loadKeys {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	// Stop the writers however the test ends.
	defer func() { cancel(); wg.Wait(); <-feedDone }()

	select {
	case <-acks.reached:
	case <-time.After(60 * time.Second):
		acked, errs := acks.snapshot()
		t.Fatalf("only %d of %d writes acknowledged within 60s before the kill; failures: %v", len(acked), killAfter, errs)
	}
	leader := c.waitLeader(5 * time.Second)
	killedAt := time.Now()
	c.kill(leader)
	deadAt := time.Now()
	acked, _ := acks.snapshot()
	t.Logf("kill -9 of leader %v after %d acknowledged writes (process gone after %v)", leader, len(acked), deadAt.Sub(killedAt).Round(time.Microsecond))

	// Writes must resume: the next acknowledgement after the process is
	// gone (so that no reply of the dead leader counts).
	var resumedAt time.Time
	poll(t, resumeBound, "writes resuming after the leader was killed", func() (bool, string) {
		at, ok := acks.firstAckAfter(deadAt)
		resumedAt = at
		acked, errs := acks.snapshot()
		return ok, fmt.Sprintf("%d acknowledged, %d failed, no acknowledgement since the kill %v ago", len(acked), len(errs), time.Since(killedAt).Round(time.Millisecond))
	})
	t.Logf("writes resumed %v after the kill -9 of the leader (bound %v)", resumedAt.Sub(killedAt).Round(time.Millisecond), resumeBound)

	wg.Wait()
	acked, errs := acks.snapshot()
	t.Logf("load done: %d of %d writes acknowledged, %d failed", len(acked), loadKeys, len(errs))
	if len(errs) > 0 {
		t.Errorf("%d writes failed although each had 20s to succeed through the failover; first: %v", len(errs), errs[:min(5, len(errs))])
	}
	t.Logf("new leader: %v", c.waitLeader(5*time.Second))

	// The restarted member catches up (from its WAL and the leader).
	c.start(leader)
	checkMemberHas(t, c, leader, acked)
	for _, m := range c.members {
		if m != leader {
			checkMemberHas(t, c, m, acked)
		}
	}
	c.waitConverged(20 * time.Second)

	// A clean stop and restart of the whole cluster keeps everything.
	for _, m := range c.members {
		c.stop(m)
	}
	for _, m := range c.members {
		c.start(m)
	}
	c.waitLeader(20 * time.Second)
	checkLinearizable(t, c, acked, "after a clean stop and restart")
	c.waitConverged(20 * time.Second)

	// So does a crash of every member at once.
	for _, m := range c.members {
		c.kill(m)
	}
	for _, m := range c.members {
		c.start(m)
	}
	c.waitLeader(20 * time.Second)
	checkLinearizable(t, c, acked, "after kill -9 of every member and a restart")
	c.waitConverged(20 * time.Second)
}

// checkMemberHas polls m with serializable reads (m's own state) until it
// holds every acknowledged key; a key with a value other than the one
// derived from it fails the test at once.
func checkMemberHas(t *testing.T, c *cluster, m *member, acked map[string]time.Time) {
	t.Helper()
	cl := c.client(m)
	start := time.Now()
	poll(t, 20*time.Second, fmt.Sprintf("%v holding every acknowledged write", m), func() (bool, string) {
		c.checkAlive(m)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		kvs, err := scanAll(ctx, cl, keyPrefix, kvclient.Serializable())
		if err != nil {
			return false, fmt.Sprintf("serializable scan: %v", err)
		}
		checkValues(t, fmt.Sprintf("%v (serializable)", m), kvs)
		missing := missingKeys(acked, kvs)
		return len(missing) == 0, fmt.Sprintf("%d keys, %d acknowledged keys missing (first %v)", len(kvs), len(missing), missing[:min(5, len(missing))])
	})
	t.Logf("%v holds all %d acknowledged writes (caught up within %v)", m, len(acked), time.Since(start).Round(time.Millisecond))
}

// checkLinearizable reads every key through the leader and checks that
// every acknowledged write is there; when says after what.
func checkLinearizable(t *testing.T, c *cluster, acked map[string]time.Time, when string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kvs, err := scanAll(ctx, c.client(), keyPrefix)
	if err != nil {
		t.Fatalf("linearizable scan %s: %v", when, err)
	}
	checkValues(t, "linearizable scan "+when, kvs)
	if missing := missingKeys(acked, kvs); len(missing) > 0 {
		t.Fatalf("%s, %d of %d acknowledged keys are missing (first %v); the scan returned %d keys",
			when, len(missing), len(acked), missing[:min(5, len(missing))], len(kvs))
	}
	// Spot-check single-key reads too.
	for _, i := range []int{0, killAfter, loadKeys - 1} {
		key := loadKey(i)
		if _, ok := acked[key]; !ok {
			continue
		}
		e, found, err := c.client().Get(ctx, []byte(key))
		if err != nil || !found || string(e.Value) != loadValue(key) {
			t.Errorf("Get(%q) %s = %q, found %v, err %v; want %q", key, when, e.Value, found, err, loadValue(key))
		}
	}
	t.Logf("%s, all %d acknowledged writes are readable through the leader", when, len(acked))
}

// scanAll reads every key with prefix, page by page.
func scanAll(ctx context.Context, cl *kvclient.Client, prefix string, ro ...kvclient.ReadOption) ([]kvclient.KeyValue, error) {
	var all []kvclient.KeyValue
	start := []byte(prefix)
	end := prefixEnd(prefix)
	for {
		kvs, more, err := cl.Range(ctx, start, kvclient.RangeOptions{End: end}, ro...)
		if err != nil {
			return nil, err
		}
		all = append(all, kvs...)
		if !more || len(kvs) == 0 {
			return all, nil
		}
		start = append(bytes.Clone(kvs[len(kvs)-1].Key), 0)
	}
}

// prefixEnd is the first key after every key with prefix (prefix has no
// 0xff byte).
func prefixEnd(prefix string) []byte {
	end := []byte(prefix)
	end[len(end)-1]++
	return end
}

// checkValues fails the test for a key that is not a load key or whose
// value is not the one derived from it.
func checkValues(t *testing.T, where string, kvs []kvclient.KeyValue) {
	t.Helper()
	for _, e := range kvs {
		if want := loadValue(string(e.Key)); string(e.Value) != want {
			t.Fatalf("%s: key %q has value %q, want %q", where, e.Key, e.Value, want)
		}
	}
}

// missingKeys returns the acknowledged keys absent from kvs, sorted.
func missingKeys(acked map[string]time.Time, kvs []kvclient.KeyValue) []string {
	have := make(map[string]bool, len(kvs))
	for _, e := range kvs {
		have[string(e.Key)] = true
	}
	var missing []string
	for k := range acked {
		if !have[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	return missing
}
