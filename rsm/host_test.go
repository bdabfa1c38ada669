package rsm

import (
	"context"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/node"
)

// startHost starts a one-member host on dir, which elects itself.
func startHost(t *testing.T, dir, addr string, app App) *Host {
	t.Helper()
	h, err := Start(node.Config{ID: 1, ClusterID: 7, Peers: map[uint64]string{1: addr}, DataDir: dir,
		TickInterval: 10 * time.Millisecond, NoSync: true}, app, Options{})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return h
}

// do retries cmd until the host has elected itself (NotLeader) or the
// deadline passes.
func do(t *testing.T, h *Host, client, seq uint64, cmd string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		res, err := h.Do(ctx, client, seq, []byte(cmd))
		if err == nil {
			return string(res)
		}
		if ctx.Err() != nil {
			t.Fatalf("Do(%d, %d, %q): %v", client, seq, cmd, err)
		}
	}
}

func TestHostDoIsExactlyOnceAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	addrs, err := node.FreeAddrs(1)
	if err != nil {
		t.Fatal(err)
	}
	app := &fakeApp{}
	h := startHost(t, dir, addrs[0], app)
	first := do(t, h, 42, 1, "put x")
	if again := do(t, h, 42, 1, "put x"); again != first {
		t.Errorf("retry answered %q, want the first result %q", again, first)
	}
	do(t, h, 0, 0, "read")
	do(t, h, 0, 0, "read")
	if len(app.calls) != 3 {
		t.Errorf("App applied %d commands %v, want 3 (the retry deduplicated, both sessionless reads applied)", len(app.calls), app.calls)
	}
	if err := h.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}

	// The session survives a restart: the log replays into a new Machine.
	app2 := &fakeApp{}
	h2 := startHost(t, dir, addrs[0], app2)
	defer h2.Stop()
	if again := do(t, h2, 42, 1, "put x"); again != first {
		t.Errorf("retry after restart answered %q, want the first result %q", again, first)
	}
	if h2.Machine().Sessions() != 1 {
		t.Errorf("Sessions() = %d after restart, want 1", h2.Machine().Sessions())
	}
}
