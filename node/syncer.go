package node

import (
	"fmt"

	"github.com/flotilla-dev/flotilla/raft"
)

// A leader writes its new entries without waiting for the fsync and makes
// them durable off the loop (dissertation §10.2.1): the core does not count
// the leader toward a quorum until StableTo, so the entries commit on the
// followers alone when a quorum of them has them, and the leader's own sync
// is out of the commit path. The sync is started when the first follower
// acknowledges (so on one shared disk it does not get ahead of the
// followers' syncs), at the next tick at the latest, and at once when the
// leader is needed for a quorum (clusters of one or two voters).

type syncPoint struct{ index, term uint64 }

type syncResult struct {
	at  syncPoint
	err error
}

// runSyncer performs the fsyncs the loop asks for.
func (n *Node) runSyncer() {
	defer close(n.syncerDone)
	for {
		select {
		case at := <-n.syncReqc:
			n.slowDisk()
			err := n.wal.Save(raft.HardState{}, nil, true)
			select {
			case n.syncDonec <- syncResult{at, err}:
			case <-n.exiting:
				return
			}
		case <-n.exiting:
			return
		}
	}
}

// asyncWrite reports whether rd's entries may be written now and synced
// later: a leader's, in a Ready that changes neither term nor vote and
// installs no snapshot.
func (n *Node) asyncWrite(rd raft.Ready) bool {
	hs := rd.HardState
	termOrVoteChanged := !hs.IsEmpty() && (hs.Term != n.persisted.Term || hs.Vote != n.persisted.Vote)
	return n.role == raft.RoleLeader && rd.Snapshot == nil && len(rd.Entries) > 0 && !termOrVoteChanged
}

// wroteAsync records entries written without a sync.
func (n *Node) wroteAsync(last raft.Entry) {
	n.unsynced = &n.written
	if n.voterCount < 3 {
		n.requestSync()
	}
}

// requestSync starts a sync of everything written so far, or remembers to
// start one when the running one ends.
func (n *Node) requestSync() {
	if n.unsynced == nil {
		return
	}
	if n.syncing {
		n.syncAgain = true
		return
	}
	n.syncReqc <- *n.unsynced // buffered, and only one request is out at a time
	n.unsynced, n.syncing, n.syncAgain = nil, true, false
}

// synced hands a finished sync to the core.
func (n *Node) synced(r syncResult) error {
	n.syncing = false
	if r.err != nil {
		return fmt.Errorf("node %d: syncing the WAL: %w", n.cfg.ID, r.err)
	}
	n.core.StableTo(r.at.index, r.at.term)
	if n.syncAgain {
		n.requestSync()
	}
	return nil
}

// syncNow makes every written entry durable before the loop goes on (before
// a snapshot, which needs a durable log up to its index).
func (n *Node) syncNow() error {
	if n.unsynced == nil && !n.syncing {
		return nil
	}
	n.slowDisk()
	if err := n.wal.Save(raft.HardState{}, nil, true); err != nil {
		return fmt.Errorf("node %d: syncing the WAL: %w", n.cfg.ID, err)
	}
	// Everything written is durable now, including what a running
	// background sync covers; its result will repeat this, harmlessly.
	n.core.StableTo(n.written.index, n.written.term)
	n.unsynced = nil
	return nil
}
