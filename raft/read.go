package raft

import "github.com/flotilla-dev/flotilla/raft/quorum"

// ReadState confirms a linearizable read (dissertation §6.4): once the
// host's state machine has applied Index, a read of it reflects every write
// committed before the host called ReadIndex with ID.
type ReadState struct {
	// ID is the host's identifier passed to ReadIndex.
	ID uint64
	// Index is the read index: the leader's commit index when the read
	// arrived, confirmed by a quorum to be the leader's still.
	Index uint64
}

// readRequest is one read waiting on the leader for confirmation.
type readRequest struct {
	from, id uint64 // the requesting node (this one or a follower) and its ID
	index    uint64 // the commit index when the read arrived
	round    uint64 // the heartbeat round that confirms it
}

// ReadIndex asks for a linearizable read point (dissertation §6.4). It
// returns at once; the answer arrives as a ReadState with this id in a
// later Ready, here on the leader or, on a follower, once the leader has
// answered. No answer arrives if leadership changes first (Ready.SoftState
// shows it) or a message is lost, so hosts give up after a timeout or on a
// leader change, and retry. On a node that knows no leader it returns a
// *NotLeaderError.
//
// The leader confirms a read with one round of heartbeats that a quorum
// answers; every read requested before the next Ready shares that round.
// A leader that has not yet committed an entry of its term holds reads
// until it has (its commit index might be stale until then, §6.4 step 1).
// With Config.LeaseReads the leader answers without the round while its
// lease holds.
func (n *Node) ReadIndex(id uint64) error {
	switch {
	case n.role == RoleLeader:
		n.leaderRead(n.id, id)
	case n.lead != None:
		n.send(Message{Type: MsgReadIndex, To: n.lead, Context: id})
	default:
		return &NotLeaderError{Leader: None}
	}
	return nil
}

// leaderRead registers a read on the leader for node from.
func (n *Node) leaderRead(from, id uint64) {
	if !n.committedInTerm() {
		n.readsHeld = append(n.readsHeld, readRequest{from: from, id: id})
		return
	}
	if n.soleVoter() || n.cfg.LeaseReads && n.leaseValid() || n.cfg.unsafe.readWithoutQuorum {
		n.answerRead(readRequest{from: from, id: id, index: n.log.committed})
		return
	}
	n.reads = append(n.reads, readRequest{from: from, id: id, index: n.log.committed, round: n.readRound + 1})
	n.readRoundDue = true
}

// soleVoter reports whether this node is the only voter, whose own
// commit index needs no confirmation.
func (n *Node) soleVoter() bool {
	ids := n.voters.IDs()
	return len(ids) == 1 && ids[0] == n.id
}

// committedInTerm reports whether the leader has committed an entry of its
// own term, and so knows the true commit index (Raft §8).
func (n *Node) committedInTerm() bool {
	t, err := n.log.term(n.log.committed)
	return err == nil && t == n.term
}

// releaseHeldReads registers the reads held until the first commit of
// the term; called when the commit index advances.
func (n *Node) releaseHeldReads() {
	if len(n.readsHeld) == 0 || !n.committedInTerm() {
		return
	}
	held := n.readsHeld
	n.readsHeld = nil
	for _, r := range held {
		n.leaderRead(r.from, r.id)
	}
}

// answerRead hands a confirmed read to its requester.
func (n *Node) answerRead(r readRequest) {
	if r.from == n.id {
		n.readStates = append(n.readStates, ReadState{ID: r.id, Index: r.index})
		return
	}
	n.send(Message{Type: MsgReadIndexResp, To: r.from, Index: r.index, Context: r.id})
}

// bcastReadRound starts a heartbeat round that confirms the reads waiting
// for it; called when the Ready is assembled so that reads share rounds.
func (n *Node) bcastReadRound() {
	if !n.readRoundDue {
		return
	}
	n.readRoundDue = false
	n.bcastHeartbeat()
}

// ackRound records that follower pr answered heartbeat round r, and
// answers the reads a quorum has now confirmed.
func (n *Node) ackRound(pr *progress, r uint64) {
	if r <= pr.RoundAcked {
		return
	}
	pr.RoundAcked = r
	confirmed := n.voters.CommittedIndex(roundIndexer{n: n})
	if n.cfg.LeaseReads {
		if t := n.roundTicks[confirmed%uint64(len(n.roundTicks))]; t.round == confirmed && t.tick > n.leaseStart {
			n.leaseStart = t.tick
		}
	}
	k := 0
	for k < len(n.reads) && n.reads[k].round <= confirmed {
		n.answerRead(n.reads[k])
		k++
	}
	if k > 0 {
		n.reads = append(n.reads[:0], n.reads[k:]...)
	}
}

// roundIndexer reports, per voter, the last heartbeat round it answered;
// the leader has answered every round it started.
type roundIndexer struct{ n *Node }

func (ri roundIndexer) AckedIndex(id uint64) (uint64, bool) {
	if id == ri.n.id {
		return ri.n.readRound, true
	}
	pr, ok := ri.n.prs[id]
	if !ok {
		return 0, false
	}
	return pr.RoundAcked, true
}

var _ quorum.AckedIndexer = roundIndexer{}

// leaseValid reports whether a leader with LeaseReads may answer reads
// without a round: a quorum answered a heartbeat round started less than
// leaseTicks ago. Those voters refuse to vote for anyone else until an
// election timeout after they received it (followers' leases, with
// CheckQuorum), so no other leader can exist yet. leaseTicks is shorter
// than the election timeout by a margin for clock drift (Config.LeaseReads).
func (n *Node) leaseValid() bool {
	return !n.leaseRevoked && n.leaseStart > 0 && n.ticks < n.leaseStart+uint64(n.leaseTicks())
}

// leaseTicks is the lease length: 90% of the election timeout, minus one
// tick for the tick in progress when the round started.
func (n *Node) leaseTicks() int { return n.cfg.ElectionTicks*9/10 - 1 }

// dropReads forgets every read waiting on this node as leader; the hosts
// time out or see the leader change.
func (n *Node) dropReads() {
	n.reads, n.readsHeld = nil, nil
	n.readRoundDue = false
}

// handleReadIndex answers a follower's MsgReadIndex on the leader.
func (n *Node) handleReadIndex(m Message) { n.leaderRead(m.From, m.Context) }

// handleReadIndexResp is a follower receiving the leader's read index.
func (n *Node) handleReadIndexResp(m Message) {
	n.readStates = append(n.readStates, ReadState{ID: m.Context, Index: m.Index})
}
