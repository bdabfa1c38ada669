package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flotilla-dev/flotilla/raft"
)

// ErrTransferFailed is wrapped by the error TransferLeadership returns when
// the target did not take over (it was unreachable or behind, or another
// node won the election).
var ErrTransferFailed = errors.New("node: leadership transfer failed")

type transferReq struct {
	to   uint64
	done chan error
	// gaveUp is the tick at which the core abandoned the transfer; the
	// target may still be taking over (it got MsgTimeoutNow late), so the
	// outcome is decided an election timeout later.
	gaveUp uint64
}

// TransferLeadership hands this leader's role to the voter to and returns
// once to leads (dissertation §3.10): proposals are refused meanwhile
// (they fail with a retryable error), to is caught up and starts an
// election at once. Use it before a planned restart of the leader so that
// the cluster does not wait for an election timeout. With to == 0 the
// most up-to-date other voter is chosen.
func (n *Node) TransferLeadership(ctx context.Context, to uint64) error {
	r := transferReq{to: to, done: make(chan error, 1)}
	select {
	case n.transferc <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return n.stoppedErr()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return n.stoppedErr()
	}
}

// startTransfer begins a transfer on the loop goroutine.
func (n *Node) startTransfer(r transferReq) {
	if r.to == 0 {
		r.to = n.bestTransferee()
		if r.to == 0 {
			r.done <- fmt.Errorf("%w: no other voter to hand over to", ErrTransferFailed)
			return
		}
	}
	if err := n.core.TransferLeadership(r.to); err != nil {
		var nl *raft.NotLeaderError
		if errors.As(err, &nl) {
			err = &NotLeaderError{Leader: nl.Leader, LeaderAddr: n.peerAddr(nl.Leader)}
		}
		r.done <- err
		return
	}
	if n.transfer != nil {
		n.transfer.done <- fmt.Errorf("%w: replaced by a transfer to node %d", ErrTransferFailed, r.to)
	}
	n.transfer = &r
}

// bestTransferee is the other voter with the longest log (ties: lowest
// ID), or 0 if there is none.
func (n *Node) bestTransferee() uint64 {
	var best, match uint64
	for _, p := range n.core.Status().Progress {
		if p.ID != n.cfg.ID && (best == 0 || p.Match > match) {
			best, match = p.ID, p.Match
		}
	}
	return best
}

// checkTransfer answers a transfer once it ended: the target leads, someone
// else does, or the core gave up.
func (n *Node) checkTransfer() {
	t := n.transfer
	if t == nil {
		return
	}
	switch {
	case n.lead == t.to:
		t.done <- nil
	case n.role == raft.RoleLeader && n.core.Transferee() == raft.None:
		if t.gaveUp == 0 {
			t.gaveUp = n.ticks
		}
		if n.ticks-t.gaveUp < uint64(n.cfg.ElectionTicks) {
			return // the target may still win the election it was told to start
		}
		t.done <- fmt.Errorf("%w: node %d did not take over within two election timeouts", ErrTransferFailed, t.to)
	case n.role != raft.RoleLeader && n.lead != raft.None:
		t.done <- fmt.Errorf("%w: node %d won the election instead of %d", ErrTransferFailed, n.lead, t.to)
	default:
		return
	}
	n.transfer = nil
}

// handOver starts the transfer a graceful stop makes from a leader, and
// returns how long the loop may keep running for it.
func (n *Node) handOver() time.Duration {
	if n.role != raft.RoleLeader || n.cfg.NoTransferOnStop || n.noHandOver.Load() {
		return 0
	}
	to := n.bestTransferee()
	if to == 0 || n.core.TransferLeadership(to) != nil {
		return 0
	}
	n.log.Info("stopping: handing leadership over", "id", n.cfg.ID, "to", to)
	return time.Duration(n.cfg.ElectionTicks) * n.cfg.TickInterval
}
