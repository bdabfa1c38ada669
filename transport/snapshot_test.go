package transport

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flotilla-dev/flotilla/raft"
)

// snapMsg is a MsgSnap from -> to carrying size bytes of seeded data.
func snapMsg(from, to uint64, size int) raft.Message {
	data := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{byte(size)})
	rng.Read(data)
	return raft.Message{Type: raft.MsgSnap, From: from, To: to, Term: 5, Snapshot: &raft.Snapshot{
		Meta: raft.SnapshotMeta{Index: 1000, Term: 4, ConfState: raft.ConfState{Voters: []uint64{1, 2, 3}}},
		Data: data,
	}}
}

// TestSnapshotStreaming sends snapshots of many sizes through 4 KiB frames
// and checks that each arrives whole and is reported.
func TestSnapshotStreaming(t *testing.T) {
	const frame = 4096
	nodes := cluster(t, 2, func(c *Config) { c.MaxFrameBytes = frame })
	a, b := nodes[0], nodes[1]
	sizes := []int{0, 1, frame - 1, frame, frame + 1, 1 << 20}
	for i, size := range sizes {
		m := snapMsg(1, 2, size)
		a.Send([]raft.Message{m})
		waitFor(t, 10*time.Second, fmt.Sprintf("the %d-byte snapshot", size), func() bool { return b.h.count() == i+1 })
		got := b.h.received()[i]
		if !bytes.Equal(got.Snapshot.Data, m.Snapshot.Data) {
			t.Fatalf("%d-byte snapshot arrived with %d bytes of different data", size, len(got.Snapshot.Data))
		}
		// cmp is slow on megabytes; the data is compared above.
		got.Snapshot = &raft.Snapshot{Meta: got.Snapshot.Meta}
		want := m
		want.Snapshot = &raft.Snapshot{Meta: m.Snapshot.Meta}
		if diff := cmp.Diff(want, got, sameMessage); diff != "" {
			t.Fatalf("%d-byte snapshot differs (-sent +received):\n%s", size, diff)
		}
		waitFor(t, 5*time.Second, "ReportSnapshot", func() bool { return len(a.h.snapReports()) == i+1 })
		if r := a.h.snapReports()[i]; r != (snapReport{2, true}) {
			t.Fatalf("report %+v, want {2 true}", r)
		}
	}
	as, bs := a.Stats().Peers[2], b.Stats().Peers[1]
	if as.SnapshotsSent != uint64(len(sizes)) || bs.SnapshotsReceived != uint64(len(sizes)) || as.SnapshotsFailed != 0 {
		t.Errorf("sender %+v, receiver %+v", as.Counters, bs.Counters)
	}
	if bs.BytesReceived < 1<<20 || bs.BytesReceived != as.BytesSent {
		t.Errorf("receiver counted %d bytes, sender %d", bs.BytesReceived, as.BytesSent)
	}
}

// blockChunk returns a beforeChunk hook that blocks the n-th chunk until
// release is closed, and a channel closed when the block begins.
func blockChunk(n int) (hook func(), blocked <-chan struct{}, release func()) {
	var mu sync.Mutex
	count := 0
	b, r := make(chan struct{}), make(chan struct{})
	var once sync.Once
	return func() {
		mu.Lock()
		count++
		c := count
		mu.Unlock()
		if c == n {
			close(b)
			<-r
		}
	}, b, func() { once.Do(func() { close(r) }) }
}

// TestSnapshotDoesNotBlockMessages holds a snapshot stream in the middle and
// checks that small messages still get through.
func TestSnapshotDoesNotBlockMessages(t *testing.T) {
	hook, blocked, release := blockChunk(2)
	defer release()
	nodes := cluster(t, 2, func(c *Config) {
		c.MaxFrameBytes = 4096
		if c.NodeID == 1 {
			c.beforeChunk = hook
		}
	})
	a, b := nodes[0], nodes[1]
	snap := snapMsg(1, 2, 1<<20)
	a.Send([]raft.Message{snap})
	<-blocked
	for i := range uint64(100) {
		a.Send([]raft.Message{heartbeat(1, 2, i+1)})
	}
	waitFor(t, 5*time.Second, "heartbeats during the snapshot", func() bool { return b.h.count() == 100 })
	release()
	waitFor(t, 10*time.Second, "the snapshot", func() bool { return b.h.count() == 101 })
	if got := b.h.received()[100]; got.Type != raft.MsgSnap || len(got.Snapshot.Data) != 1<<20 {
		t.Fatalf("last message is %v", got)
	}
}

// TestSnapshotQueueFull queues more snapshots than fit behind one in
// progress: the excess is dropped and reported failed, the rest delivered.
func TestSnapshotQueueFull(t *testing.T) {
	hook, blocked, release := blockChunk(1)
	defer release()
	nodes := cluster(t, 2, func(c *Config) {
		if c.NodeID == 1 {
			c.beforeChunk = hook
		}
	})
	a, b := nodes[0], nodes[1]
	a.Send([]raft.Message{snapMsg(1, 2, 10)})
	<-blocked
	for range snapQueueLen + 3 {
		a.Send([]raft.Message{snapMsg(1, 2, 10)})
	}
	waitFor(t, 5*time.Second, "three failure reports", func() bool { return len(a.h.snapReports()) == 3 })
	release()
	waitFor(t, 10*time.Second, "the queued snapshots", func() bool { return b.h.count() == 1+snapQueueLen })
	waitFor(t, 5*time.Second, "all reports", func() bool { return len(a.h.snapReports()) == 4+snapQueueLen })
	ok := 0
	for _, r := range a.h.snapReports() {
		if r.ok {
			ok++
		}
	}
	if s := a.Stats().Peers[2]; ok != 1+snapQueueLen || s.SnapshotsFailed != 3 || s.Dropped != 3 {
		t.Fatalf("%d reported ok; stats %+v", ok, s.Counters)
	}
}

func TestSnapshotTooLargeForPeer(t *testing.T) {
	nodes := cluster(t, 2, func(c *Config) { c.MaxSnapshotBytes = 1000 })
	a, b := nodes[0], nodes[1]
	a.Send([]raft.Message{snapMsg(1, 2, 5000)})
	waitFor(t, 5*time.Second, "ReportSnapshot", func() bool { return len(a.h.snapReports()) == 1 })
	if r := a.h.snapReports()[0]; r.ok {
		t.Fatal("a snapshot over the peer's limit was reported sent")
	}
	if e := a.Stats().Peers[2].LastError; !strings.Contains(e, "snapshot too large: 5000 bytes, peer 2 accepts at most 1000") {
		t.Fatalf("last error %q", e)
	}
	a.Send([]raft.Message{snapMsg(1, 2, 1000)})
	waitFor(t, 5*time.Second, "a snapshot at the limit", func() bool { return b.h.count() == 1 })
}

// fakeAcceptor accepts connections as node id would, then hands snapshot
// connections to onSnap; message connections are held open and drained.
func fakeAcceptor(t *testing.T, id uint64, maxFrame uint32, onSnap func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				h, err := readHello(c)
				if err != nil {
					return
				}
				c.Write((&acceptInfo{version: protocolVersion, node: id, maxFrame: maxFrame, maxSnapshot: 1 << 40}).frame())
				if h.kind == kindSnapshots {
					onSnap(c)
					return
				}
				io.Copy(io.Discard, c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// TestSnapshotStreamBroken has the receiver hang up in the middle of a
// snapshot: the sender reports it failed.
func TestSnapshotStreamBroken(t *testing.T) {
	addr := fakeAcceptor(t, 2, 64<<10, func(c net.Conn) {
		io.CopyN(io.Discard, c, 100<<10)
	})
	cfg := testConfig(1)
	cfg.Peers = map[uint64]string{2: addr}
	a := start(t, cfg)
	a.Send([]raft.Message{snapMsg(1, 2, 32<<20)}) // more than socket buffers hold
	waitFor(t, 20*time.Second, "ReportSnapshot", func() bool { return len(a.h.snapReports()) == 1 })
	if r := a.h.snapReports()[0]; r.ok {
		t.Fatal("a broken stream was reported sent")
	}
	if a.h.unreachableCount(2) == 0 {
		t.Error("the broken stream was not reported with ReportUnreachable")
	}
	if e := a.Stats().Peers[2].LastError; !strings.Contains(e, "streaming snapshot to peer 2") {
		t.Errorf("last error %q", e)
	}
}

// rawSnapshotConn opens a snapshot connection to addr as node 1.
func rawSnapshotConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, typ, _ := rawHandshake(t, addr, hello{version: protocolVersion, kind: kindSnapshots, cluster: 1, from: 1, to: 2})
	if typ != frameAccept {
		t.Fatalf("handshake answered with %s", frameTypeName(typ))
	}
	c.SetDeadline(time.Time{})
	return c
}

// snapHeaderFrame is a frameSnapHeader announcing total bytes for m.
func snapHeaderFrame(total uint64, m raft.Message) []byte {
	p := binary.AppendUvarint(nil, total)
	p = appendMessage(p, &m)
	return append(appendFrameHeader(nil, frameSnapHeader, len(p)), p...)
}

// TestSnapshotReceiverLimits sends hostile snapshot streams.
func TestSnapshotReceiverLimits(t *testing.T) {
	b := start(t, testConfig(2))
	hdr := snapMsg(1, 2, 0)
	tests := []struct {
		name    string
		send    []byte
		wantErr string
	}{
		{"over the limit", snapHeaderFrame(DefaultMaxSnapshotBytes+1, hdr), "snapshot too large: peer announced 1073741825 bytes, limit 1073741824"},
		{"chunk first", appendFrameHeader(nil, frameSnapChunk, 0), "snapshot chunk frame where a snapshot header belongs"},
		{"not a snapshot", snapHeaderFrame(10, heartbeat(1, 2, 1)), "not a MsgSnap"},
		{"chunk beyond total", append(append(snapHeaderFrame(2, hdr), appendFrameHeader(nil, frameSnapChunk, 3)...), "abc"...), "chunk frame of 3 bytes with 2 snapshot bytes to come"},
		{"data in header", snapHeaderFrame(1, snapMsg(1, 2, 5)), "not a MsgSnap without data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := rawSnapshotConn(t, b.Addr())
			if _, err := c.Write(tt.send); err != nil {
				t.Fatal(err)
			}
			if got := readUntilClosed(t, c, 5*time.Second); !strings.Contains(string(got), tt.wantErr) {
				t.Fatalf("answer %q, want an error containing %q", got, tt.wantErr)
			}
		})
	}
	if b.h.count() != 0 {
		t.Fatalf("delivered %d messages from hostile streams", b.h.count())
	}
}

// TestSnapshotReceiverGrowsBuffer announces a 900 MiB snapshot, sends one
// chunk and hangs up: the receiver must not have allocated the announced
// size.
func TestSnapshotReceiverGrowsBuffer(t *testing.T) {
	b := start(t, testConfig(2))
	before := b.Stats().Inbound.ProtocolErrors
	alloc := bytesAllocated(func() {
		c := rawSnapshotConn(t, b.Addr())
		c.Write(snapHeaderFrame(900<<20, snapMsg(1, 2, 0)))
		c.Write(append(appendFrameHeader(nil, frameSnapChunk, 1024), make([]byte, 1024)...))
		c.Close()
		waitFor(t, 5*time.Second, "the receiver to give up", func() bool {
			return b.Stats().Inbound.ProtocolErrors > before
		})
	})
	if alloc > 16<<20 {
		t.Fatalf("a 900 MiB announcement with 1 KiB of data cost %d MiB", alloc>>20)
	}
	if e := b.Stats().Inbound.LastError; !strings.Contains(e, "after 1024 of 943718400 bytes: unexpected EOF") {
		t.Fatalf("last error %q", e)
	}
}
