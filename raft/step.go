package raft

import (
	"fmt"

	"github.com/flotilla-dev/flotilla/raft/quorum"
)

func (n *Node) reset(term uint64) {
	if n.term != term {
		n.term = term
		n.vote = None
	}
	n.lead = None
	n.electionElapsed = 0
	n.heartbeatElapsed = 0
	n.resetRandomizedTimeout()
	n.votes = make(map[uint64]bool, len(n.ids))
	n.appendPending, n.commitPending = false, false
	n.dropReads()
	n.leaseStart, n.leaseRevoked = 0, false
	n.transferee, n.transferElapsed = None, 0
	for _, id := range n.ids {
		pr := n.prs[id]
		pr.Match, pr.Next = 0, n.log.lastIndex()+1
		pr.SentCommit = 0
		pr.RoundAcked = 0
		pr.resetState(StateProbe)
		pr.RecentActive = id == n.id
	}
}

// resetRandomizedTimeout draws the next election timeout from
// [ElectionTicks, 2*ElectionTicks) (Raft §5.2).
func (n *Node) resetRandomizedTimeout() {
	n.randomizedTimeout = n.cfg.ElectionTicks + int(n.cfg.Rand.Uint64()%uint64(n.cfg.ElectionTicks))
}

func (n *Node) becomeFollower(term, lead uint64) {
	n.step = stepFollower
	n.reset(term)
	n.lead = lead
	n.role = RoleFollower
}

func (n *Node) becomePreCandidate() {
	if n.role == RoleLeader {
		panic(fmt.Sprintf("raft: node %d: leader cannot become pre-candidate", n.id))
	}
	// Neither the term nor the vote changes (dissertation §9.6).
	n.step = stepCandidate
	n.votes = make(map[uint64]bool, len(n.ids))
	n.lead = None
	n.role = RolePreCandidate
	// A fresh timeout, so that two pre-candidates that collided do not
	// collide again at the next timeout.
	n.resetRandomizedTimeout()
}

func (n *Node) becomeCandidate() {
	if n.role == RoleLeader {
		panic(fmt.Sprintf("raft: node %d: leader cannot become candidate", n.id))
	}
	n.step = stepCandidate
	n.reset(n.term + 1)
	n.vote = n.id
	n.role = RoleCandidate
	n.cfg.Logger.Debug("raft: campaigning", "id", n.id, "term", n.term)
}

func (n *Node) becomeLeader() {
	if n.role == RoleFollower {
		panic(fmt.Sprintf("raft: node %d: follower cannot become leader without an election", n.id))
	}
	n.step = stepLeader
	n.reset(n.term)
	n.lead = n.id
	n.role = RoleLeader
	self := n.prs[n.id]
	self.Match = n.log.stable
	self.becomeReplicate()
	// A no-op entry of the new term lets the leader commit, and so learn the
	// commit index of, everything before it (Raft §5.4.2, §8).
	n.log.appendLocal(Entry{Term: n.term, Index: n.log.lastIndex() + 1, Type: EntryNormal})
	// No membership change until the no-op is applied: a configuration
	// entry of an earlier term may sit uncommitted before it, and a leader
	// must commit an entry of its own term before it changes the
	// configuration (the single-server change bug, Ongaro 2015).
	n.pendingConfIndex = n.log.lastIndex()
	n.cfg.Logger.Info("raft: became leader", "id", n.id, "term", n.term, "last", n.log.lastIndex())
	n.bcastAppend()
}

// Step hands the node a message received from a peer. Messages for another
// node or of an unknown type are rejected with an ErrInvalidMessage error;
// messages of an old term are answered or dropped as the protocol says.
func (n *Node) Step(m Message) error {
	if err := n.validate(m); err != nil {
		return err
	}
	if (m.Type == MsgVote || m.Type == MsgPreVote) && n.role == RoleLeader && n.prs[m.From] == nil {
		// A node outside the configuration campaigns: one that was
		// removed without learning it. It cannot win, so it must not
		// disrupt (§4.2.3); send it the log up to the commit index so that
		// it applies its removal.
		n.sendCatchUp(m.From, m.Index, m.LogTerm)
		return nil
	}
	switch {
	case m.Term > n.term:
		if (m.Type == MsgVote || m.Type == MsgPreVote) && n.inLease() &&
			!(m.Type == MsgVote && m.Context == contextTransfer) {
			// A leader is known and was heard from within the election
			// timeout: ignore disruptive candidates (dissertation §4.2.3),
			// unless the leader itself asked for this election (§3.10).
			return nil
		}
		switch {
		case m.Type == MsgPreVote:
			// A pre-vote never changes the receiver's term.
		case m.Type == MsgPreVoteResp && !m.Reject:
			// A grant for the term this pre-candidate hopes to run in.
		case m.Type == MsgApp || m.Type == MsgHeartbeat || m.Type == MsgSnap:
			n.becomeFollower(m.Term, m.From)
		case m.Type == MsgVote:
			// Adopt the term, but keep the election timer running: it
			// restarts only if the vote is granted (Raft Figure 2). A node
			// whose log is the most up to date must still time out and
			// campaign while candidates with stale logs keep asking.
			elapsed := n.electionElapsed
			n.becomeFollower(m.Term, None)
			n.electionElapsed = elapsed
		default:
			n.becomeFollower(m.Term, None)
		}
	case m.Term < n.term:
		n.stepStale(m)
		return nil
	}
	switch m.Type {
	case MsgVote, MsgPreVote:
		n.handleVote(m)
		return nil
	}
	return n.step(n, m)
}

func (n *Node) validate(m Message) error {
	switch {
	case m.To != n.id:
		return fmt.Errorf("%w: message for node %d delivered to node %d", ErrInvalidMessage, m.To, n.id)
	case m.From == None || m.From == n.id:
		return fmt.Errorf("%w: message from node %d to itself or from no node", ErrInvalidMessage, m.From)
	case m.Type < MsgVote || m.Type >= msgTypeEnd:
		return fmt.Errorf("%w: unknown type %d", ErrInvalidMessage, m.Type)
	case m.Term == 0:
		return fmt.Errorf("%w: %s without a term", ErrInvalidMessage, m.Type)
	case m.Type == MsgSnap && m.Snapshot.IsEmpty():
		return fmt.Errorf("%w: MsgSnap without a snapshot", ErrInvalidMessage)
	}
	for i := range m.Entries {
		e := &m.Entries[i]
		if e.Index != m.Index+1+uint64(i) || e.Term > m.Term || (i > 0 && e.Term < m.Entries[i-1].Term) {
			return fmt.Errorf("%w: entry %d/%d out of place in %s", ErrInvalidMessage, e.Term, e.Index, m)
		}
	}
	return nil
}

// inLease reports whether this node heard from a leader within the last
// election timeout, with check-quorum on.
//
// With LeaseReads a node also ignores them for its first election timeout
// after it starts: a node that crashed and restarted at once forgot that
// it heard from a leader, and a vote from it must not end that leader's
// read lease early.
func (n *Node) inLease() bool {
	return n.cfg.CheckQuorum && (n.heardFromLeader() || n.cfg.LeaseReads && n.ticks <= uint64(n.cfg.ElectionTicks))
}

// heardFromLeader reports whether this node is, or heard from, a leader
// within the last election timeout. Pre-votes are refused then
// (dissertation §9.6): the cluster works, and a node that cannot hear the
// leader should not replace it.
func (n *Node) heardFromLeader() bool {
	return n.lead != None && n.electionElapsed < n.cfg.ElectionTicks
}

// stepStale handles a message from an older term.
func (n *Node) stepStale(m Message) {
	switch {
	case (n.cfg.CheckQuorum || n.cfg.PreVote || !n.voters.Contains(n.id)) && (m.Type == MsgApp || m.Type == MsgHeartbeat):
		// The sender thinks it leads an old term. With pre-vote or
		// check-quorum this node may have moved on without the sender
		// hearing of it; tell it the current term so it steps down.
		// Without them a voter with a newer term campaigns and so raises
		// the leader's, but a learner (or a removed node) never does: it
		// must answer, or a learner whose term a removed member's
		// campaign raised is left without a leader for good (the leader
		// ignores a removed member's vote requests; sim seed 409631).
		n.send(Message{Type: MsgAppResp, To: m.From})
	case m.Type == MsgPreVote:
		n.send(n.commitHint(Message{Type: MsgPreVoteResp, To: m.From, Term: n.term, Reject: true}))
	}
}

// commitHint adds this node's commit index, and the term of the entry
// there, to a vote rejection. A candidate whose log holds the same entry
// holds everything before it (Log Matching, Raft §5.3) and may advance its
// commit index to it: a commit index is only ever set to a committed
// entry. This matters across membership changes: a candidate that has not
// learned that the entry moving it to a new configuration committed still
// counts votes in the old one, where the voters it needs may have been
// removed and refuse it for their longer logs; learning the commit lets it
// apply the entry and count votes in the new configuration instead.
func (n *Node) commitHint(m Message) Message {
	if t, err := n.log.term(n.log.committed); err == nil {
		m.Commit, m.LogTerm = n.log.committed, t
	}
	return m
}

// learnCommit advances the commit index from a vote rejection's hint.
func (n *Node) learnCommit(m Message) {
	if m.Commit > n.log.committed && n.log.matchTerm(m.Commit, m.LogTerm) {
		n.log.commitTo(m.Commit)
	}
}

// handleVote answers MsgVote and MsgPreVote (Raft §5.2, §5.4.1; §9.6).
func (n *Node) handleVote(m Message) {
	resp := MsgVoteResp
	if m.Type == MsgPreVote {
		resp = MsgPreVoteResp
	}
	canVote := n.vote == m.From ||
		(n.vote == None && n.lead == None) ||
		(m.Type == MsgPreVote && m.Term > n.term && !n.heardFromLeader())
	upToDate := n.log.isUpToDate(m.Index, m.LogTerm) || n.cfg.unsafe.voteWithoutLogCheck
	if !canVote || !upToDate {
		rej := n.commitHint(Message{Type: resp, To: m.From, Term: n.term, Reject: true})
		if m.Index > 0 && m.Index < rej.Commit && n.log.matchTerm(m.Index, m.LogTerm) {
			// The candidate's whole log is committed (it lacks this
			// node's commit point): say so.
			rej.Commit, rej.LogTerm = m.Index, m.LogTerm
		}
		n.send(rej)
		return
	}
	// A grant carries the term asked for, so a pre-candidate can tell it
	// apart from a stale answer.
	n.send(Message{Type: resp, To: m.From, Term: m.Term})
	if m.Type == MsgVote {
		n.electionElapsed = 0
		n.vote = m.From
	}
}

func stepFollower(n *Node, m Message) error {
	switch m.Type {
	case MsgApp, MsgHeartbeat, MsgSnap:
		n.electionElapsed = 0
		n.lead = m.From
		n.handleLeaderMessage(m)
	case MsgReadIndexResp:
		if m.From == n.lead {
			n.handleReadIndexResp(m)
		}
	case MsgTimeoutNow:
		if m.From == n.lead {
			n.handleTimeoutNow(m)
		}
	}
	return nil
}

func stepCandidate(n *Node, m Message) error {
	want := MsgVoteResp
	if n.role == RolePreCandidate {
		want = MsgPreVoteResp
	}
	switch m.Type {
	case MsgApp, MsgHeartbeat, MsgSnap:
		// A leader of this term exists (Raft §5.2).
		n.becomeFollower(m.Term, m.From)
		n.handleLeaderMessage(m)
	case want:
		if m.Reject {
			n.learnCommit(m)
		}
		switch n.poll(m.From, !m.Reject) {
		case quorum.VoteWon:
			n.winElection(n.role == RolePreCandidate)
		case quorum.VoteLost:
			n.becomeFollower(n.term, None)
		}
	}
	return nil
}

func (n *Node) handleLeaderMessage(m Message) {
	switch m.Type {
	case MsgApp:
		n.handleAppend(m)
	case MsgHeartbeat:
		n.log.commitTo(m.Commit)
		n.send(Message{Type: MsgHeartbeatResp, To: m.From, Context: m.Context})
	case MsgSnap:
		n.handleSnapshot(m)
	}
}

func stepLeader(n *Node, m Message) error {
	pr := n.prs[m.From]
	if pr == nil {
		return nil
	}
	pr.RecentActive = true
	switch m.Type {
	case MsgAppResp:
		n.handleAppendResp(m, pr)
	case MsgReadIndex:
		n.handleReadIndex(m)
	case MsgHeartbeatResp:
		n.ackRound(pr, m.Context)
		pr.ProbeSent = false
		if pr.State == StateReplicate && pr.Inflights.full() {
			// A full window whose answers were lost would stall forever.
			pr.Inflights.freeFirst()
		}
		if pr.Match < n.log.lastIndex() {
			n.maybeSendAppend(m.From, true)
		} else if m.From == n.transferee && n.transferElapsed < n.cfg.ElectionTicks-n.cfg.HeartbeatTicks {
			// The target may have ignored the last MsgTimeoutNow: it was
			// not a voter yet in its own view (it had not applied its
			// promotion). Ask again, but not in the transfer's last
			// heartbeat interval, so that no MsgTimeoutNow arrives after
			// the leader gave up and took proposals again.
			n.sendTimeoutNow(m.From)
		}
	}
	return nil
}
