package transport

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flotilla-dev/flotilla/raft"
)

// TestThreeNodesExchange has three transports send thousands of messages to
// each other at once and checks that every one arrives, in order per sender.
func TestThreeNodesExchange(t *testing.T) {
	const perPair = 3000
	nodes := cluster(t, 3, nil)
	var wg sync.WaitGroup
	for i, n := range nodes {
		from := uint64(i + 1)
		wg.Go(func() {
			for seq := uint64(1); seq <= perPair; seq += 100 {
				var batch []raft.Message
				for s := seq; s < seq+100; s++ {
					for to := uint64(1); to <= 3; to++ {
						if to != from {
							m := heartbeat(from, to, s)
							m.Type = raft.MsgApp
							m.Entries = []raft.Entry{{Term: 1, Index: s, Type: raft.EntryNormal, Data: fmt.Appendf(nil, "%d->%d #%d", from, to, s)}}
							batch = append(batch, m)
						}
					}
				}
				n.Send(batch)
			}
		})
	}
	wg.Wait()
	for i, n := range nodes {
		waitFor(t, 20*time.Second, fmt.Sprintf("node %d to receive %d messages", i+1, 2*perPair), func() bool {
			return n.h.count() >= 2*perPair
		})
	}
	for i, n := range nodes {
		self := uint64(i + 1)
		next := map[uint64]uint64{}
		for _, m := range n.h.received() {
			if m.To != self {
				t.Fatalf("node %d received a message for %d: %v", self, m.To, m)
			}
			next[m.From]++
			if m.Index != next[m.From] {
				t.Fatalf("node %d: message %d from %d arrived as number %d: out of order", self, m.Index, m.From, next[m.From])
			}
			if want := fmt.Sprintf("%d->%d #%d", m.From, self, m.Index); len(m.Entries) != 1 || string(m.Entries[0].Data) != want {
				t.Fatalf("node %d: message %d from %d carries %v, want %q", self, m.Index, m.From, m.Entries, want)
			}
		}
		s := n.Stats()
		if s.Total.Dropped != 0 || s.Total.MsgsSent != 2*perPair || s.Total.MsgsReceived != 2*perPair {
			t.Errorf("node %d stats: %+v; want %d sent and received, none dropped", self, s.Total, 2*perPair)
		}
		for id, ps := range s.Peers {
			if !ps.Connected || ps.BytesSent == 0 || ps.BytesReceived == 0 {
				t.Errorf("node %d, peer %d: %+v", self, id, ps)
			}
		}
	}
}

// countingConn counts the writes made to a connection.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestBatching queues a thousand messages before the connection is up and
// checks that they go out in a handful of writes.
func TestBatching(t *testing.T) {
	const msgs = 1000
	b := start(t, testConfig(2))
	release := make(chan struct{})
	var writes atomic.Int64
	cfg := testConfig(1)
	cfg.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{c, &writes}, nil
	}
	a := start(t, cfg)
	a.AddPeer(2, b.Addr())
	for i := range uint64(msgs) {
		a.Send([]raft.Message{heartbeat(1, 2, i+1)})
	}
	close(release)
	waitFor(t, 10*time.Second, "all messages to arrive", func() bool { return b.h.count() == msgs })
	// One write for the hello, then ~30 KB of frames in a 64 KiB buffer.
	if w := writes.Load(); w > 4 {
		t.Fatalf("%d messages took %d writes, want a few", msgs, w)
	}
}

// TestPeerRestart closes a peer, starts a new one on the same address and
// checks that traffic resumes both ways.
func TestPeerRestart(t *testing.T) {
	nodes := cluster(t, 2, nil)
	a, b := nodes[0], nodes[1]
	a.Send([]raft.Message{heartbeat(1, 2, 1)})
	waitFor(t, 5*time.Second, "the first message", func() bool { return b.h.count() == 1 })

	addr := b.Addr()
	b.Close()
	cfg := testConfig(2)
	cfg.Listen = addr
	b2 := start(t, cfg)
	b2.AddPeer(1, a.Addr())

	seq := uint64(1)
	waitFor(t, 10*time.Second, "the restarted peer to receive", func() bool {
		seq++
		a.Send([]raft.Message{heartbeat(1, 2, seq)})
		return b2.h.count() > 0
	})
	b2.Send([]raft.Message{heartbeat(2, 1, 1)})
	waitFor(t, 5*time.Second, "the restarted peer's message", func() bool { return a.h.count() > 0 })
	s := a.Stats().Peers[2]
	if s.Reconnects < 1 || s.LastError == "" {
		t.Errorf("after the restart, peer stats are %+v; want a reconnect and the error that caused it", s)
	}
	if a.h.unreachableCount(2) == 0 {
		t.Errorf("the broken connection was not reported with ReportUnreachable")
	}
}

func TestSendToUnknownPeer(t *testing.T) {
	a := start(t, testConfig(1))
	a.Send([]raft.Message{heartbeat(1, 99, 1), heartbeat(1, 1, 1)})
	waitFor(t, 5*time.Second, "ReportUnreachable(99)", func() bool { return a.h.unreachableCount(99) == 1 })
	if d := a.Stats().Total.Dropped; d != 2 {
		t.Fatalf("dropped %d, want 2", d)
	}
}

// TestUnreachablePeerKeepsQueue sends to a peer that is down: the queue
// keeps QueueLen messages and drops the rest, the failures are reported, and
// what was kept arrives in order once the peer is up.
func TestUnreachablePeerKeepsQueue(t *testing.T) {
	addr := freeAddr(t)
	cfg := testConfig(1)
	cfg.QueueLen = 8
	cfg.Peers = map[uint64]string{2: addr}
	a := start(t, cfg)
	for i := range uint64(20) {
		a.Send([]raft.Message{heartbeat(1, 2, i+1)})
	}
	waitFor(t, 5*time.Second, "ReportUnreachable(2)", func() bool { return a.h.unreachableCount(2) > 0 })
	waitFor(t, 5*time.Second, "a dial failure in Stats", func() bool {
		return strings.Contains(a.Stats().Peers[2].LastError, "dialing peer 2 at "+addr)
	})
	if s := a.Stats().Peers[2]; s.Dropped != 12 || s.Connected || s.DialFailures == 0 {
		t.Fatalf("peer stats %+v; want 12 dropped, not connected, dial failures", s)
	}

	bcfg := testConfig(2)
	bcfg.Listen = addr
	b := start(t, bcfg)
	waitFor(t, 5*time.Second, "the queued messages", func() bool { return b.h.count() == 8 })
	for i, m := range b.h.received() {
		if m.Index != uint64(i+1) {
			t.Fatalf("message %d has index %d, want %d", i, m.Index, i+1)
		}
	}
}

func TestRemoveAndAddPeer(t *testing.T) {
	nodes := cluster(t, 2, nil)
	a, b := nodes[0], nodes[1]
	a.Send([]raft.Message{heartbeat(1, 2, 1)})
	waitFor(t, 5*time.Second, "the first message", func() bool { return b.h.count() == 1 })

	a.RemovePeer(2)
	a.RemovePeer(2) // no-op
	a.Send([]raft.Message{heartbeat(1, 2, 2)})
	waitFor(t, 5*time.Second, "ReportUnreachable(2)", func() bool { return a.h.unreachableCount(2) > 0 })
	if s := a.Stats(); s.Peers[2].Addr != "" || s.Total.Dropped != 1 {
		t.Fatalf("after RemovePeer: %+v", s)
	}

	a.AddPeer(2, b.Addr())
	a.AddPeer(2, b.Addr()) // same address: no-op
	a.AddPeer(1, b.Addr()) // self: ignored
	a.Send([]raft.Message{heartbeat(1, 2, 3)})
	waitFor(t, 5*time.Second, "a message after AddPeer", func() bool { return b.h.count() == 2 })
	if got := b.h.received()[1].Index; got != 3 {
		t.Fatalf("second message has index %d, want 3", got)
	}
	if s := a.Stats().Peers[2]; s.MsgsSent != 2 || s.Addr != b.Addr() {
		t.Fatalf("peer 2 stats after re-adding: %+v", s)
	}
}

// TestAddPeerNewAddress moves a peer to another address: the old connection
// is dropped and messages go to the new one.
func TestAddPeerNewAddress(t *testing.T) {
	a := start(t, testConfig(1))
	b1, b2 := start(t, testConfig(2)), start(t, testConfig(2))
	a.AddPeer(2, b1.Addr())
	a.Send([]raft.Message{heartbeat(1, 2, 1)})
	waitFor(t, 5*time.Second, "the message to the old address", func() bool { return b1.h.count() == 1 })
	a.AddPeer(2, b2.Addr())
	a.Send([]raft.Message{heartbeat(1, 2, 2)})
	waitFor(t, 5*time.Second, "the message to the new address", func() bool { return b2.h.count() == 1 })
	if b1.h.count() != 1 {
		t.Fatalf("the old address received %d messages, want 1", b1.h.count())
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	nodes := cluster(t, 2, nil)
	a := nodes[0]
	a.Send([]raft.Message{heartbeat(1, 2, 1)})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a.Send([]raft.Message{heartbeat(1, 2, 2)}) // dropped, no panic
	a.AddPeer(3, "127.0.0.1:1")                // ignored
	if _, err := net.Dial("tcp", a.Addr()); err == nil {
		t.Fatal("a closed transport still accepts connections")
	}
}

func TestContextCancelStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	h := &recorder{}
	cfg := testConfig(1)
	tr, err := NewWithContext(ctx, cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	waitFor(t, 5*time.Second, "the listener to close", func() bool {
		c, err := net.Dial("tcp", tr.Addr())
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	tr.Send([]raft.Message{heartbeat(1, 2, 1)})
	tr.Close()
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no node id", func(c *Config) { c.NodeID = 0 }, "NodeID is 0"},
		{"no listen", func(c *Config) { c.Listen = "" }, "Listen is empty"},
		{"tiny frames", func(c *Config) { c.MaxFrameBytes = 10 }, "MaxFrameBytes 10 is outside"},
		{"peer zero", func(c *Config) { c.Peers = map[uint64]string{0: "x"} }, "node ID 0"},
		{"bad address", func(c *Config) { c.Listen = "127.0.0.1:99999" }, "listening on 127.0.0.1:99999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(1)
			tt.edit(&cfg)
			tr, err := New(cfg, &recorder{})
			if err == nil {
				tr.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "transport: ") {
				t.Fatalf("err = %q, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := New(testConfig(1), nil); err == nil {
		t.Fatal("New accepted a nil Handler")
	}
}

// TestMessageTooLarge drops a message that does not fit in a frame and
// keeps sending the others.
func TestMessageTooLarge(t *testing.T) {
	nodes := cluster(t, 2, func(c *Config) { c.MaxFrameBytes = minFrameBytes })
	a, b := nodes[0], nodes[1]
	big := heartbeat(1, 2, 1)
	big.Type = raft.MsgApp
	big.Entries = []raft.Entry{{Term: 1, Index: 1, Data: make([]byte, 2*minFrameBytes)}}
	a.Send([]raft.Message{big, heartbeat(1, 2, 2)})
	waitFor(t, 5*time.Second, "the small message", func() bool { return b.h.count() == 1 })
	s := a.Stats().Peers[2]
	if s.Dropped != 1 || !strings.Contains(s.LastError, "message too large") {
		t.Fatalf("peer stats %+v; want one drop for size", s)
	}
	if diff := cmp.Diff(heartbeat(1, 2, 2), b.h.received()[0], sameMessage); diff != "" {
		t.Fatalf("received (-want +got):\n%s", diff)
	}
}
