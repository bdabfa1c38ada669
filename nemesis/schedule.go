package nemesis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// schedule injects faults from a seeded random source: a quiet period, a
// fault, its undoing, again, until the run's context ends. Only one fault
// is active at a time.
type schedule struct {
	opts   Options
	c      *cluster
	h      *history
	rng    *rand.Rand
	events []FaultEvent
}

func newSchedule(opts Options, c *cluster, h *history) *schedule {
	return &schedule{opts: opts, c: c, h: h, rng: rand.New(rand.NewPCG(uint64(opts.Seed), 0))}
}

// between draws a duration uniformly from [lo, hi].
func (s *schedule) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(s.rng.Int64N(int64(hi-lo)+1))
}

// run injects faults until ctx ends, then undoes the active one. It
// returns an error only if a fault could not be injected or undone (the
// nemesis itself failed, not the cluster).
func (s *schedule) run(ctx context.Context) error {
	if len(s.opts.Faults) == 0 {
		<-ctx.Done()
		return nil
	}
	for {
		if !sleep(ctx, s.between(s.opts.QuietMin, s.opts.QuietMax)) {
			return nil
		}
		kind := s.opts.Faults[s.rng.IntN(len(s.opts.Faults))]
		// Inject even if ctx ends meanwhile (it is then undone at once):
		// a request cut short could leave a cut half made.
		ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		undo, desc, err := s.inject(ictx, kind)
		cancel()
		if err != nil {
			return err
		}
		ev := FaultEvent{Kind: kind, Description: desc, Start: s.h.now()}
		fmt.Fprintf(s.opts.Progress, "%6.1fs %s\n", seconds(ev.Start), desc)
		sleep(ctx, s.between(s.opts.FaultMin, s.opts.FaultMax))
		// Undo even after ctx ended, within a bound of its own.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		err = undo(uctx)
		cancel()
		ev.End = s.h.now()
		s.events = append(s.events, ev)
		if err != nil {
			return fmt.Errorf("nemesis: undoing %q: %w", desc, err)
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// target picks a member: the current leader half of the time (when one is
// known), any member otherwise.
func (s *schedule) target(ctx context.Context) *member {
	if s.rng.IntN(2) == 0 {
		if l := s.c.leader(ctx); l != nil {
			return l
		}
	}
	return s.c.members[s.rng.IntN(len(s.c.members))]
}

// inject starts a fault of the given kind and returns how to undo it.
func (s *schedule) inject(ctx context.Context, kind Fault) (undo func(context.Context) error, desc string, err error) {
	m := s.target(ctx)
	switch kind {
	case FaultKill:
		desc = fmt.Sprintf("kill -9 member %d", m.id)
		return func(context.Context) error { return s.c.start(m) }, desc, s.c.kill(m)
	case FaultPause:
		desc = fmt.Sprintf("SIGSTOP member %d", m.id)
		return func(context.Context) error { return s.c.resume(m) }, desc, s.c.pause(m)
	case FaultPartition:
		var others []uint64
		for _, o := range s.c.members {
			if o != m {
				others = append(others, o.id)
			}
		}
		desc = fmt.Sprintf("isolate member %d (drop all its traffic both ways)", m.id)
		return func(ctx context.Context) error { return s.c.cut(ctx, m, nil, nil) }, desc, s.c.cut(ctx, m, others, others)
	case FaultOneWay:
		o := s.c.members[s.rng.IntN(len(s.c.members)-1)]
		if o == m {
			o = s.c.members[len(s.c.members)-1]
		}
		from, to := m, o
		if s.rng.IntN(2) == 0 {
			from, to = o, m
		}
		// Cut at the sender or at the receiver: both hooks get exercised.
		at, dropTo, dropFrom := from, []uint64{to.id}, []uint64(nil)
		where := "sender"
		if s.rng.IntN(2) == 0 {
			at, dropTo, dropFrom, where = to, nil, []uint64{from.id}, "receiver"
		}
		desc = fmt.Sprintf("cut %d -> %d one way (at the %s)", from.id, to.id, where)
		return func(ctx context.Context) error { return s.c.cut(ctx, at, nil, nil) }, desc, s.c.cut(ctx, at, dropTo, dropFrom)
	case FaultSlowFsync:
		ms := 50 + s.rng.Int64N(251)
		desc = fmt.Sprintf("slow fsync on member %d (%d ms each)", m.id, ms)
		return func(ctx context.Context) error { return s.c.slowFsync(ctx, m, 0) }, desc, s.c.slowFsync(ctx, m, ms)
	}
	return nil, "", fmt.Errorf("nemesis: unknown fault %q", kind)
}

// sleep waits for d or until ctx ends, and reports whether ctx is live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
