package node

import (
	"context"
	"testing"
	"time"
)

// Status answers within about StatusTimeout even while the loop is stuck
// (here: a follower's fsync, made on its loop, that takes longer than the
// timeout), from the status of the loop's last tick.
func TestStatusAnswersWhileTheLoopIsStuck(t *testing.T) {
	c, err := StartLocalCluster(3, t.TempDir(), func(cfg *Config) { cfg.TickInterval = 10 * time.Millisecond })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Propose(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	var f *Node
	for _, nd := range c.Nodes {
		if nd != l {
			f = nd
		}
	}
	for st := f.tickStatus.Load(); st == nil || st.Term == 0; st = f.tickStatus.Load() {
		select {
		case <-ctx.Done():
			t.Fatal("no tick status")
		case <-time.After(5 * time.Millisecond): // poll until the deadline
		}
	}
	f.SetSyncDelay(3 * StatusTimeout)
	defer f.SetSyncDelay(0)
	go l.Propose(ctx, []byte("slow")) // the follower's fsync of it wedges its loop
	// Ask until a question is not taken by the loop: that call falls back.
	for ctx.Err() == nil {
		start := time.Now()
		st := f.Status()
		took := time.Since(start)
		if took < StatusTimeout*9/10 {
			continue // answered by the loop
		}
		if took > 2*StatusTimeout {
			t.Fatalf("Status took %v while the loop was stuck; want about %v", took, StatusTimeout)
		}
		if st.ID != f.cfg.ID || st.Term == 0 {
			t.Fatalf("fallback status %+v, want node %d's last tick status", st, f.cfg.ID)
		}
		return
	}
	t.Fatal("the follower's loop never got stuck in the slow fsync")
}
