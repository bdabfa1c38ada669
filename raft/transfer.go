package raft

import (
	"errors"
	"fmt"
)

// ErrTransferring is returned by Propose while the leader hands its role
// to another node (TransferLeadership): the proposal was not accepted;
// retry on the new leader.
var ErrTransferring = errors.New("raft: leadership transfer in progress; retry on the new leader")

// contextTransfer marks a MsgVote sent because the leader asked for it
// (MsgTimeoutNow): receivers grant it even inside their leader lease.
const contextTransfer = 1

// TransferLeadership asks the leader to hand its role to the voter to
// (dissertation §3.10): it stops accepting proposals, brings to's log up to
// date, then tells it to start an election at once (MsgTimeoutNow), which
// it wins without waiting for an election timeout. If to has not taken
// over within an election timeout, the leader resumes. Calling it again
// for another node replaces the transfer.
//
// Errors: a *NotLeaderError on a non-leader, or an error naming a target
// that is this node or not a voter.
func (n *Node) TransferLeadership(to uint64) error {
	switch {
	case n.role != RoleLeader:
		return &NotLeaderError{Leader: n.lead}
	case to == n.id:
		return fmt.Errorf("raft: node %d already leads", to)
	case !n.voters.Contains(to):
		return fmt.Errorf("raft: node %d is not a voter (voters %s)", to, n.voters)
	}
	n.cfg.Logger.Info("raft: transferring leadership", "id", n.id, "term", n.term, "to", to)
	n.transferee, n.transferElapsed = to, 0
	n.maybeSendTimeoutNow()
	return nil
}

// Transferee returns the node a leadership transfer is under way to, or
// None.
func (n *Node) Transferee() uint64 { return n.transferee }

// maybeSendTimeoutNow tells the transferee to campaign once its log
// matches the leader's, and otherwise sends it what it misses.
func (n *Node) maybeSendTimeoutNow() {
	pr := n.prs[n.transferee]
	if pr == nil {
		n.transferee = None
		return
	}
	if pr.Match == n.log.lastIndex() {
		n.sendTimeoutNow(n.transferee)
		return
	}
	n.maybeSendAppend(n.transferee, true)
}

// sendTimeoutNow tells to to campaign now. Its election bypasses the
// voters' leases, so this leader's read lease is void from here on for
// the rest of its term: only heartbeat rounds confirm reads.
func (n *Node) sendTimeoutNow(to uint64) {
	n.leaseRevoked = true
	n.send(Message{Type: MsgTimeoutNow, To: to})
}

// tickTransfer abandons a transfer that did not finish within an election
// timeout.
func (n *Node) tickTransfer() {
	if n.transferee == None {
		return
	}
	if n.transferElapsed++; n.transferElapsed >= n.cfg.ElectionTicks {
		n.cfg.Logger.Info("raft: leadership transfer timed out; resuming", "id", n.id, "term", n.term, "to", n.transferee)
		n.transferee = None
	}
}

// handleTimeoutNow is a follower told by its leader to campaign now: a real
// election (no pre-vote, which the others would refuse while they hear
// from the leader) whose votes are granted inside leader leases.
func (n *Node) handleTimeoutNow(m Message) {
	if !n.voters.Contains(n.id) {
		return
	}
	n.cfg.Logger.Info("raft: leader asked for an election", "id", n.id, "term", n.term, "from", m.From)
	n.campaignTransfer = true
	n.campaign(false)
	n.campaignTransfer = false
}
