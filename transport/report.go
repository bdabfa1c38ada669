package transport

import (
	"context"
	"sync"
)

// reporter delivers ReportUnreachable and ReportSnapshot calls from its own
// goroutine, so that Send (called by the node, perhaps while it holds its
// own locks) and the peer goroutines never call into the Handler directly.
// Unreachable reports for the same node coalesce while pending, so a flood
// of drops costs one call; snapshot reports are delivered in order.
type reporter struct {
	wake chan struct{} // capacity 1: a pending signal to run

	mu      sync.Mutex
	pending map[uint64]struct{} // nodes with an unreachable report queued; guarded by mu
	order   []uint64            // the keys of pending, in report order; guarded by mu
	snaps   []snapReport        // guarded by mu
}

type snapReport struct {
	id uint64
	ok bool
}

func (r *reporter) init() {
	r.wake = make(chan struct{}, 1)
	r.pending = make(map[uint64]struct{})
}

func (r *reporter) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// unreachable queues a ReportUnreachable(id).
func (r *reporter) unreachable(id uint64) {
	r.mu.Lock()
	if _, ok := r.pending[id]; !ok {
		r.pending[id] = struct{}{}
		r.order = append(r.order, id)
	}
	r.mu.Unlock()
	r.signal()
}

// snapshot queues a ReportSnapshot(id, ok).
func (r *reporter) snapshot(id uint64, ok bool) {
	r.mu.Lock()
	r.snaps = append(r.snaps, snapReport{id, ok})
	r.mu.Unlock()
	r.signal()
}

// run delivers queued reports to h until ctx is done; what is still queued
// then is discarded.
func (r *reporter) run(ctx context.Context, h Handler, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		}
		r.mu.Lock()
		order, snaps := r.order, r.snaps
		r.order, r.snaps = nil, nil
		clear(r.pending)
		r.mu.Unlock()
		for _, id := range order {
			if ctx.Err() != nil {
				return
			}
			h.ReportUnreachable(id)
		}
		for _, s := range snaps {
			if ctx.Err() != nil {
				return
			}
			h.ReportSnapshot(s.id, s.ok)
		}
	}
}
