package node

import (
	"testing"

	"github.com/flotilla-dev/flotilla/raft"
)

// TestRemovedAfterSnapshotRestore: a member removed from the log, then back
// in a snapshot the node restores, is not reported as removed (a retried
// removal of it must really remove it).
func TestRemovedAfterSnapshotRestore(t *testing.T) {
	n := &Node{members: map[uint64]Member{}, removedIDs: map[uint64]bool{4: true}}
	if !n.Removed(4) {
		t.Fatal("Removed(4) = false before the restore")
	}
	ms := []Member{{ID: 1, PeerAddr: "a"}, {ID: 4, PeerAddr: "d"}}
	n.restoreMembers(ms, raft.ConfState{Voters: []uint64{1, 4}})
	if n.Removed(4) {
		t.Error("Removed(4) = true for a member the restored snapshot holds")
	}
	// Reported from the member list too, whatever removedIDs says.
	n.removedIDs[1] = true
	if n.Removed(1) {
		t.Error("Removed(1) = true for a current member")
	}
}
