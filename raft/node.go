package raft

import (
	"errors"
	"fmt"
	"slices"

	"github.com/flotilla-dev/flotilla/raft/quorum"
)

// Role is a node's part in the protocol (Raft §5.1, plus the pre-vote phase).
type Role uint8

const (
	// RoleFollower answers leaders and candidates.
	RoleFollower Role = iota + 1
	// RolePreCandidate asks whether it could win an election (§9.6)
	// before it changes its term.
	RolePreCandidate
	// RoleCandidate runs an election in its current term (Raft §5.2).
	RoleCandidate
	// RoleLeader accepts proposals and replicates the log.
	RoleLeader
)

func (r Role) String() string {
	switch r {
	case RoleFollower:
		return "follower"
	case RolePreCandidate:
		return "pre-candidate"
	case RoleCandidate:
		return "candidate"
	case RoleLeader:
		return "leader"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// ErrNotLeader is matched (errors.Is) by every NotLeaderError.
var ErrNotLeader = errors.New("raft: not the leader")

// ErrInvalidMessage is wrapped by Step's errors for malformed messages.
var ErrInvalidMessage = errors.New("raft: invalid message")

// NotLeaderError is returned for a proposal made on a node that is not the
// leader. Leader names the leader this node knows of, or None.
type NotLeaderError struct {
	Leader uint64
}

func (e *NotLeaderError) Error() string {
	if e.Leader == None {
		return "raft: not the leader, and no leader is known (an election may be under way; retry)"
	}
	return fmt.Sprintf("raft: not the leader; node %d is the leader", e.Leader)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// Node is the pure Raft state machine of one member. It never blocks, starts
// no goroutines, reads no clock and does no I/O: the host feeds it ticks,
// messages and proposals, then drains Ready and calls Advance. A Node is not
// safe for concurrent use; the host serialises every call.
type Node struct {
	id  uint64
	cfg Config
	log raftLog

	term uint64
	vote uint64
	role Role
	lead uint64

	// voters decides quorums; ids lists every member in ascending order so
	// that iteration (and thus every message sequence) is deterministic.
	voters quorum.Joint
	ids    []uint64
	prs    map[uint64]*progress
	// Membership (confchange.go): the learners, whether to leave the joint
	// configuration on its own, the index of the newest configuration
	// entry the leader appended (no other may be proposed until it is
	// applied) and of the configuration in force.
	learners         map[uint64]bool
	autoLeave        bool
	pendingConfIndex uint64
	confIndex        uint64
	votes            map[uint64]bool

	electionElapsed   int
	heartbeatElapsed  int
	randomizedTimeout int

	msgs []Message
	// appendPending and commitPending defer broadcasts to the next Ready:
	// entries proposed, or commit advances made, since the last one are sent
	// to each follower in one message.
	appendPending, commitPending bool
	prevHard                     HardState
	prevSoft                     SoftState
	// outstanding is set while a Ready is handed out and not yet Advanced.
	outstanding bool

	// Reads (read.go): reads waiting for a heartbeat round, reads held
	// until the leader commits in its term, the last round started and
	// whether reads wait for a new one, and confirmed reads for the next
	// Ready. ticks counts every Tick; roundTicks remembers when recent
	// rounds started and leaseStart when the newest confirmed one did.
	reads, readsHeld []readRequest
	readRound        uint64
	readRoundDue     bool
	readStates       []ReadState
	ticks            uint64
	roundTicks       [64]roundStart
	leaseStart       uint64
	leaseRevoked     bool // a MsgTimeoutNow went out this term: no lease

	// Leadership transfer (transfer.go): the node it goes to and the ticks
	// since it began; campaignTransfer marks the votes of an election the
	// leader asked for.
	transferee       uint64
	transferElapsed  int
	campaignTransfer bool

	step func(*Node, Message) error
}

// roundStart records the tick at which a heartbeat round started.
type roundStart struct{ round, tick uint64 }

// New returns a Node for cfg: a new member, or a restarted one when
// cfg.Restore is set. It starts as a follower.
func New(cfg Config) (*Node, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	n := &Node{id: c.ID, cfg: c, ticks: 1}
	cs := ConfState{Voters: slices.Sorted(slices.Values(c.Peers))}
	if rs := c.Restore; rs != nil {
		if err := n.restorePersisted(rs); err != nil {
			return nil, err
		}
		if !rs.Snapshot.IsEmpty() {
			cs = rs.Snapshot.Meta.ConfState
			n.confIndex = rs.Snapshot.Meta.Index
		}
	}
	n.applyConfState(cs)
	applied := max(c.Applied, n.log.snap.Index)
	if applied > n.log.committed {
		// The host's image is ahead of the durable commit index: the commit
		// index was not synced. It is committed all the same.
		if applied > n.log.lastIndex() {
			return nil, fmt.Errorf("%w: Applied %d is beyond the last log index %d", ErrInvalidConfig, applied, n.log.lastIndex())
		}
		n.log.committed = applied
	}
	n.log.applied, n.log.applying = applied, applied
	// The committed configuration entries are in force: the ones the host
	// applied, and those it is about to be handed again.
	for i := n.log.snap.Index + 1; i <= n.log.committed; i++ {
		if e := &n.log.ents[i-n.log.snap.Index-1]; e.Type == EntryConfChange {
			_, cs, err := DecodeConfChange(e.Data)
			if err != nil {
				return nil, fmt.Errorf("%w: configuration entry %d/%d: %v", ErrInvalidConfig, e.Term, e.Index, err)
			}
			n.applyConfState(cs)
			n.confIndex = e.Index
		}
	}
	n.becomeFollower(n.term, None)
	n.prevHard = n.hardState()
	n.prevSoft = n.softState()
	n.cfg.Logger.Info("raft: node started", "id", n.id, "term", n.term, "commit", n.log.committed,
		"applied", applied, "last", n.log.lastIndex(), "voters", n.voters.String())
	return n, nil
}

func (n *Node) restorePersisted(rs *PersistedState) error {
	if s := rs.Snapshot; !s.IsEmpty() {
		n.log.snap, n.log.snapshot = s.Meta, s
	}
	for i, e := range rs.Entries {
		if want := n.log.snap.Index + 1 + uint64(i); e.Index != want {
			return fmt.Errorf("%w: restored entry %d has index %d, want %d (the log is not contiguous after snapshot %d)",
				ErrInvalidConfig, i, e.Index, want, n.log.snap.Index)
		}
	}
	n.log.ents = slices.Clone(rs.Entries)
	n.log.stable = n.log.lastIndex()
	n.log.inProgress = n.log.stable
	hs := rs.HardState
	if hs.Commit > n.log.lastIndex() {
		return fmt.Errorf("%w: restored commit index %d is beyond the last log index %d (entries lost?)",
			ErrInvalidConfig, hs.Commit, n.log.lastIndex())
	}
	n.term, n.vote = hs.Term, hs.Vote
	n.log.committed = max(hs.Commit, n.log.snap.Index)
	return nil
}

func (n *Node) hardState() HardState {
	return HardState{Term: n.term, Vote: n.vote, Commit: n.log.committed}
}

// SoftState is volatile state worth showing: who leads and in which role
// this node is. It need not be persisted.
type SoftState struct {
	Lead uint64
	Role Role
}

func (n *Node) softState() SoftState { return SoftState{Lead: n.lead, Role: n.role} }

// ID returns the node's ID.
func (n *Node) ID() uint64 { return n.id }

// Tick advances the node's logical clock by one tick. Election and
// heartbeat timeouts are counted in ticks (Config.ElectionTicks,
// Config.HeartbeatTicks).
func (n *Node) Tick() {
	n.ticks++
	if n.role == RoleLeader {
		n.tickHeartbeat()
		return
	}
	n.electionElapsed++
	if n.electionElapsed >= n.randomizedTimeout {
		n.electionElapsed = 0
		n.hup()
	}
}

func (n *Node) tickHeartbeat() {
	n.heartbeatElapsed++
	n.electionElapsed++
	if n.electionElapsed >= n.cfg.ElectionTicks {
		n.electionElapsed = 0
		if n.cfg.CheckQuorum && !n.quorumActive() {
			n.cfg.Logger.Info("raft: leader lost contact with a quorum; stepping down", "id", n.id, "term", n.term)
			n.becomeFollower(n.term, None)
			return
		}
	}
	n.expireSnapshots()
	n.tickTransfer()
	n.maybeLeaveJoint()
	n.maybePromoteLearner()
	if n.heartbeatElapsed >= n.cfg.HeartbeatTicks {
		n.heartbeatElapsed = 0
		n.bcastHeartbeat()
	}
}

// expireSnapshots gives up on snapshots whose outcome was never reported
// within SnapshotTimeoutTicks; the follower is probed and, if it still needs
// it, sent the snapshot again.
func (n *Node) expireSnapshots() {
	for _, id := range n.ids {
		pr := n.prs[id]
		if pr.State != StateSnapshot {
			continue
		}
		if pr.SnapshotTicks++; pr.SnapshotTicks >= n.cfg.SnapshotTimeoutTicks {
			n.cfg.Logger.Warn("raft: no outcome reported for a snapshot; sending it again", "id", n.id, "to", id)
			pr.PendingSnapshot = 0
			pr.becomeProbe()
		}
	}
}

// quorumActive reports whether a quorum was heard from since the last check,
// and starts the next check period.
func (n *Node) quorumActive() bool {
	active := make(map[uint64]bool, len(n.ids))
	for _, id := range n.ids {
		pr := n.prs[id]
		active[id] = id == n.id || pr.RecentActive
		if id != n.id {
			pr.RecentActive = false
		}
	}
	return n.voters.VoteResult(active) == quorum.VoteWon
}

// Campaign starts an election now (with a pre-vote first if configured),
// as if the election timeout had elapsed. It does nothing on a leader.
func (n *Node) Campaign() { n.hup() }

func (n *Node) hup() {
	if n.role == RoleLeader {
		return
	}
	if !n.voters.Contains(n.id) {
		return
	}
	if n.cfg.PreVote {
		n.campaign(true)
	} else {
		n.campaign(false)
	}
}

func (n *Node) campaign(pre bool) {
	var typ MessageType
	var term uint64
	if pre {
		n.becomePreCandidate()
		typ, term = MsgPreVote, n.term+1
	} else {
		n.becomeCandidate()
		typ, term = MsgVote, n.term
	}
	if n.poll(n.id, true) == quorum.VoteWon {
		n.winElection(pre)
		return
	}
	for _, id := range n.ids {
		if id == n.id {
			continue
		}
		m := Message{Type: typ, To: id, Term: term, Index: n.log.lastIndex(), LogTerm: n.log.lastTerm()}
		if n.campaignTransfer {
			m.Context = contextTransfer
		}
		n.send(m)
	}
}

func (n *Node) poll(id uint64, granted bool) quorum.VoteResult {
	if _, seen := n.votes[id]; !seen {
		n.votes[id] = granted
	}
	return n.voters.VoteResult(n.votes)
}

func (n *Node) winElection(pre bool) {
	if !n.voters.Contains(n.id) {
		// The configuration changed under the campaign (a membership
		// change applied meanwhile) and no longer holds this node.
		n.becomeFollower(n.term, None)
		return
	}
	if pre {
		n.campaign(false)
		return
	}
	n.becomeLeader()
}

// Propose appends data to the log if this node is the leader and returns the
// index and term the entry was given. The entry is committed once it is
// handed out in Ready.CommittedEntries at that index with that term; if
// another entry shows up at that index, the proposal was lost to a leader
// change. On a non-leader Propose returns a *NotLeaderError.
func (n *Node) Propose(data []byte) (index, term uint64, err error) {
	if n.role != RoleLeader {
		return 0, 0, &NotLeaderError{Leader: n.lead}
	}
	if n.transferee != None {
		return 0, 0, ErrTransferring
	}
	e := Entry{Term: n.term, Index: n.log.lastIndex() + 1, Type: EntryNormal, Data: data}
	n.log.appendLocal(e)
	// The appends go out when the host next asks for a Ready, so that all
	// proposals made before it share MsgApps instead of one each.
	n.appendPending = true
	return e.Index, e.Term, nil
}
