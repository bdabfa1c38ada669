package transport

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flotilla-dev/flotilla/raft"
)

// TestFaultsCutOneWay cuts node 1's messages to node 2 (outbound) and node
// 3's messages to node 1 (inbound) and checks that exactly those messages
// are dropped, that the other directions still work, and that Heal
// restores both. Per-sender order proves a message was dropped: the one
// sent after the heal arrives first.
func TestFaultsCutOneWay(t *testing.T) {
	nodes := cluster(t, 3, nil)
	f := NewFaults()
	nodes[0].SetFaults(f)
	f.Block(2)
	f.BlockFrom(3)
	if diff := cmp.Diff(FaultState{DropTo: []uint64{2}, DropFrom: []uint64{3}}, f.State()); diff != "" {
		t.Fatalf("State (-want +got):\n%s", diff)
	}

	nodes[0].Send([]raft.Message{heartbeat(1, 2, 1), heartbeat(1, 3, 1)})
	nodes[1].Send([]raft.Message{heartbeat(2, 1, 1)})
	nodes[2].Send([]raft.Message{heartbeat(3, 1, 1)})
	waitFor(t, 10*time.Second, "node 3 to receive from 1, node 1 from 2, and node 1 to drop 3's message", func() bool {
		return nodes[2].h.count() == 1 && nodes[0].h.count() == 1 && f.State().DroppedIn == 1
	})
	if st := f.State(); st.DroppedOut != 1 {
		t.Fatalf("DroppedOut = %d, want 1", st.DroppedOut)
	}
	if got := nodes[0].h.received()[0].From; got != 2 {
		t.Fatalf("node 1 received a message from %d, want only 2's", got)
	}

	f.Heal()
	nodes[0].Send([]raft.Message{heartbeat(1, 2, 2)})
	nodes[2].Send([]raft.Message{heartbeat(3, 1, 2)})
	waitFor(t, 10*time.Second, "the healed directions to deliver", func() bool {
		return nodes[1].h.count() == 1 && nodes[0].h.count() == 2
	})
	if m := nodes[1].h.received()[0]; m.Index != 2 {
		t.Fatalf("node 2 first received message %d from 1; want 2 (1 was cut)", m.Index)
	}
	if m := nodes[0].h.received()[1]; m.From != 3 || m.Index != 2 {
		t.Fatalf("node 1 received %d from %d; want 2 from 3 (1 was cut)", m.Index, m.From)
	}
}

// TestFaultsDropSnapshotReportsFailure checks that a MsgSnap cut on the way
// out is reported failed, so that the leader retries it later.
func TestFaultsDropSnapshotReportsFailure(t *testing.T) {
	nodes := cluster(t, 2, nil)
	f := NewFaults()
	f.Block(2)
	nodes[0].SetFaults(f)
	m := raft.Message{Type: raft.MsgSnap, From: 1, To: 2, Term: 1,
		Snapshot: &raft.Snapshot{Meta: raft.SnapshotMeta{Index: 5, Term: 1}, Data: []byte("image")}}
	nodes[0].Send([]raft.Message{m})
	waitFor(t, 10*time.Second, "the dropped snapshot to be reported", func() bool {
		return len(nodes[0].h.snapReports()) == 1
	})
	if r := nodes[0].h.snapReports()[0]; r.ok || r.id != 2 {
		t.Fatalf("snapshot report %+v, want a failure for node 2", r)
	}
}

// TestNilFaultsDropNothing checks that a nil filter is inert.
func TestNilFaultsDropNothing(t *testing.T) {
	var f *Faults
	if f.dropsTo(1) || f.dropsFrom(1) {
		t.Fatal("a nil *Faults dropped a message")
	}
}
