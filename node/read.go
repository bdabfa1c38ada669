package node

import (
	"context"
	"errors"

	"github.com/flotilla-dev/flotilla/raft"
)

// ErrReadLost is returned by ReadIndex when the read could not be
// confirmed: leadership changed, or the leader's answer did not arrive in
// time. Nothing was read; retry.
var ErrReadLost = errors.New("node: read not confirmed (leadership changed or the answer was lost); retry")

// readWaiter is one ReadIndex call in the loop.
type readWaiter struct {
	id    uint64
	index uint64 // the confirmed read index, once known
	asked uint64 // the loop's tick count when it was asked
	done  chan error
}

// readExpiryTicks is how long the loop waits for a read to be confirmed
// before it gives up: two election timeouts.
func (n *Node) readExpiryTicks() uint64 { return 2 * uint64(n.cfg.ElectionTicks) }

// ReadIndex waits until this node may serve a linearizable read from its
// state machine (dissertation §6.4): it asks the leader (itself, or
// through the leader if it is a follower) for a read index confirmed by a
// quorum, then waits until it has applied that index. When it returns nil,
// a read of the state machine reflects every command committed before
// ReadIndex was called. It returns the read index.
//
// Errors: a *NotLeaderError when no leader is known, ErrReadLost when
// leadership changed before the read was confirmed, ErrStopped, or the
// context's error.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	r := &readWaiter{done: make(chan error, 1)}
	select {
	case n.readc <- r:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-n.done:
		return 0, n.stoppedErr()
	}
	select {
	case err := <-r.done:
		return r.index, err
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-n.done:
		select {
		case err := <-r.done:
			return r.index, err
		default:
			return 0, n.stoppedErr()
		}
	}
}

// read hands a ReadIndex call to the core (loop goroutine).
func (n *Node) read(r *readWaiter) {
	n.nextRead++
	r.id, r.asked = n.nextRead, n.ticks
	if err := n.core.ReadIndex(r.id); err != nil {
		var nl *raft.NotLeaderError
		if errors.As(err, &nl) {
			err = &NotLeaderError{Leader: nl.Leader, LeaderAddr: n.peerAddr(nl.Leader)}
		}
		r.done <- err
		return
	}
	n.reads[r.id] = r
}

// confirmReads records the read indexes of a Ready; reads whose index is
// applied are answered by answerReads.
func (n *Node) confirmReads(states []raft.ReadState) {
	for _, rs := range states {
		r, ok := n.reads[rs.ID]
		if !ok {
			continue
		}
		delete(n.reads, rs.ID)
		r.index = rs.Index
		n.readsApplying = append(n.readsApplying, r)
	}
}

// answerReads answers the confirmed reads this node has applied.
func (n *Node) answerReads() {
	k := 0
	for _, r := range n.readsApplying {
		if r.index <= n.applied {
			r.done <- nil
			continue
		}
		n.readsApplying[k] = r
		k++
	}
	clear(n.readsApplying[k:])
	n.readsApplying = n.readsApplying[:k]
}

// loseReads fails the reads not yet confirmed: after a leader change the
// core will not answer them. With expired set it fails only those asked
// more than readExpiryTicks ago (their answer was lost).
func (n *Node) loseReads(expired bool) {
	for id, r := range n.reads {
		if expired && n.ticks-r.asked < n.readExpiryTicks() {
			continue
		}
		r.done <- ErrReadLost
		delete(n.reads, id)
	}
}

// stopReads fails every read when the loop stops.
func (n *Node) stopReads(err error) {
	for id, r := range n.reads {
		r.done <- err
		delete(n.reads, id)
	}
	for _, r := range n.readsApplying {
		r.done <- err
	}
	n.readsApplying = nil
	for {
		select {
		case r := <-n.readc:
			r.done <- err
		default:
			return
		}
	}
}
