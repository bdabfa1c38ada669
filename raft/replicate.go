package raft

import "github.com/flotilla-dev/flotilla/raft/quorum"

// send queues m for the next Ready. Responses to votes carry their term
// explicitly; every other message gets the current term.
func (n *Node) send(m Message) {
	m.From = n.id
	if m.Term == 0 {
		m.Term = n.term
	}
	if k := len(n.msgs); k > 0 && m.Type == MsgAppResp && !m.Reject {
		// Acknowledgements are cumulative: one that directly follows
		// another to the same leader replaces it.
		if last := &n.msgs[k-1]; last.Type == MsgAppResp && !last.Reject && last.To == m.To && last.Term == m.Term {
			last.Index = max(last.Index, m.Index)
			return
		}
	}
	n.msgs = append(n.msgs, m)
}

// handleAppend is the AppendEntries receiver (Raft §5.3, Figure 2).
func (n *Node) handleAppend(m Message) {
	if m.Index < n.log.committed {
		// Everything up to the commit index is already in place.
		n.send(Message{Type: MsgAppResp, To: m.From, Index: n.log.committed})
		return
	}
	if last, ok := n.log.maybeAppend(m.Index, m.LogTerm, m.Commit, m.Entries); ok {
		n.send(Message{Type: MsgAppResp, To: m.From, Index: last})
		return
	}
	// The consistency check failed. Name the largest index at or below the
	// probe whose term is at most the probe's term: the leader can skip
	// every index between it and the probe in one round trip.
	hintIdx, hintTerm := n.log.findConflictByTerm(m.Index, m.LogTerm)
	n.send(Message{Type: MsgAppResp, To: m.From, Index: m.Index, Reject: true, RejectHint: hintIdx, LogTerm: hintTerm})
}

// handleSnapshot is the InstallSnapshot receiver (Raft §7).
func (n *Node) handleSnapshot(m Message) {
	s := m.Snapshot
	switch {
	case s.Meta.Index <= n.log.committed:
		// Nothing new in it.
	case n.log.matchTerm(s.Meta.Index, s.Meta.Term):
		// The log already holds the snapshot's last entry, so it holds
		// everything before it: keep the log and just advance the commit.
		n.log.commitTo(s.Meta.Index)
	default:
		n.cfg.Logger.Info("raft: installing snapshot", "id", n.id, "index", s.Meta.Index, "term", s.Meta.Term)
		n.log.restore(s)
		if len(s.Meta.ConfState.Voters) > 0 {
			n.applyConfState(s.Meta.ConfState)
			n.confIndex = s.Meta.Index
		}
		n.send(Message{Type: MsgAppResp, To: m.From, Index: n.log.lastIndex()})
		return
	}
	n.send(Message{Type: MsgAppResp, To: m.From, Index: n.log.committed})
}

// handleAppendResp is the leader's side of log replication (Raft §5.3).
func (n *Node) handleAppendResp(m Message, pr *progress) {
	if m.Reject {
		hint := m.RejectHint
		if m.LogTerm > 0 {
			hint, _ = n.log.findConflictByTerm(m.RejectHint, m.LogTerm)
		}
		if pr.maybeDecrTo(m.Index, hint) {
			if pr.State == StateReplicate {
				pr.becomeProbe()
			}
			n.maybeSendAppend(m.From, true)
		}
		return
	}
	wasPaused := pr.isPaused()
	// An answer to a probe that matched exactly at Match (an empty probe)
	// proves the match point too.
	if !pr.maybeUpdate(m.Index) && (pr.State != StateProbe || m.Index != pr.Match) {
		return
	}
	switch {
	case pr.State == StateProbe:
		pr.becomeReplicate()
	case pr.State == StateSnapshot && pr.Match >= pr.PendingSnapshot:
		pr.becomeReplicate()
	case pr.State == StateReplicate:
		pr.Inflights.freeLE(m.Index)
	}
	if n.maybeCommit() {
		n.commitPending = true
	} else if wasPaused {
		n.maybeSendAppend(m.From, true)
	}
	// Keep the stream to this follower full.
	for n.maybeSendAppend(m.From, false) {
	}
	if m.From == n.transferee && pr.Match == n.log.lastIndex() {
		n.sendTimeoutNow(m.From)
	}
}

// maybeCommit advances the commit index to the largest index a quorum holds,
// if that entry is of the current term (Raft §5.4.2: entries of earlier
// terms commit only indirectly, by a current-term entry after them).
func (n *Node) maybeCommit() bool {
	mci := n.voters.CommittedIndex(matchIndexer(n.prs))
	if mci <= n.log.committed {
		return false
	}
	if t, _ := n.log.term(mci); t != n.term && !n.cfg.unsafe.commitPreviousTerm {
		return false
	}
	n.log.commitTo(mci)
	n.releaseHeldReads()
	return true
}

type matchIndexer map[uint64]*progress

func (m matchIndexer) AckedIndex(id uint64) (uint64, bool) {
	pr, ok := m[id]
	if !ok {
		return 0, false
	}
	return pr.Match, true
}

var _ quorum.AckedIndexer = matchIndexer(nil)

func (n *Node) bcastAppend() {
	for _, id := range n.ids {
		if id != n.id {
			n.maybeSendAppend(id, true)
		}
	}
}

// flushBroadcasts sends what Propose and commit advances deferred: new
// entries to every follower, and the new commit index to followers that
// have not been sent it yet.
func (n *Node) flushBroadcasts() {
	if n.role != RoleLeader {
		n.appendPending, n.commitPending = false, false
		return
	}
	if n.appendPending {
		for _, id := range n.ids {
			if id != n.id {
				for n.maybeSendAppend(id, false) {
				}
			}
		}
	}
	if n.commitPending || n.appendPending {
		for _, id := range n.ids {
			if id != n.id && n.prs[id].SentCommit < n.log.committed {
				n.maybeSendAppend(id, true)
			}
		}
	}
	n.appendPending, n.commitPending = false, false
	n.bcastReadRound()
}

// bcastHeartbeat sends a round of heartbeats. Each round has a number
// that followers echo: a quorum answering round r confirms that this node
// still led when r started, which confirms reads (read.go).
func (n *Node) bcastHeartbeat() {
	n.readRound++
	n.readRoundDue = false
	n.roundTicks[n.readRound%uint64(len(n.roundTicks))] = roundStart{round: n.readRound, tick: n.ticks}
	for _, id := range n.ids {
		if id == n.id {
			continue
		}
		// Only vouch for a commit index the follower has entries for.
		commit := min(n.prs[id].Match, n.log.committed)
		n.send(Message{Type: MsgHeartbeat, To: id, Commit: commit, Context: n.readRound})
	}
}

// maybeSendAppend sends the follower the entries it misses, up to
// MaxMsgBytes, or a snapshot if they are compacted away. With sendIfEmpty
// false it sends nothing when there are no entries to send. It returns
// whether a message was sent.
func (n *Node) maybeSendAppend(to uint64, sendIfEmpty bool) bool {
	pr := n.prs[to]
	if pr.isPaused() {
		return false
	}
	prevIdx := pr.Next - 1
	prevTerm, err := n.log.term(prevIdx)
	if err != nil {
		return n.sendSnapshot(to, pr)
	}
	var ents []Entry
	last := n.log.lastIndex()
	if pr.Next <= last {
		ents, _ = n.log.slice(pr.Next, last+1, n.cfg.MaxMsgBytes)
	}
	if len(ents) == 0 && !sendIfEmpty {
		return false
	}
	m := Message{Type: MsgApp, To: to, Index: prevIdx, LogTerm: prevTerm, Entries: ents, Commit: n.log.committed}
	pr.sentEntries(prevIdx+uint64(len(ents)), m.size(), len(ents) > 0)
	pr.SentCommit = max(pr.SentCommit, n.log.committed)
	n.send(m)
	return true
}

// sendSnapshot moves a follower that needs compacted entries to snapshot
// state and sends it the newest snapshot.
func (n *Node) sendSnapshot(to uint64, pr *progress) bool {
	if !pr.RecentActive {
		// Do not ship a large snapshot to a member that may be down.
		return false
	}
	s := n.log.snapshot
	if s == nil {
		panic("raft: log is compacted but holds no snapshot")
	}
	pr.becomeSnapshot(s.Meta.Index)
	n.cfg.Logger.Info("raft: sending snapshot", "id", n.id, "to", to, "index", s.Meta.Index)
	n.send(Message{Type: MsgSnap, To: to, Snapshot: s})
	return true
}

// ReportSnapshot tells the leader whether a snapshot reached the follower
// to. On failure the follower goes back to probing; either way the leader
// waits for the next heartbeat response before sending again.
func (n *Node) ReportSnapshot(to uint64, ok bool) {
	pr := n.prs[to]
	if n.role != RoleLeader || pr == nil || pr.State != StateSnapshot {
		return
	}
	if !ok {
		pr.PendingSnapshot = 0
	}
	pr.becomeProbe()
	pr.ProbeSent = true
}

// ReportUnreachable tells the leader that a message to the follower to
// could not be delivered; the leader stops streaming optimistically to it.
func (n *Node) ReportUnreachable(to uint64) {
	pr := n.prs[to]
	if n.role != RoleLeader || pr == nil || to == n.id {
		return
	}
	if pr.State == StateReplicate {
		pr.becomeProbe()
	}
}
