package raft

import (
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// inflightLasts lists the last indexes of the messages in flight, oldest
// first.
func inflightLasts(in *inflights) []uint64 {
	var out []uint64
	for k := range in.count {
		out = append(out, in.last[(in.start+k)%in.maxCount])
	}
	return out
}

func TestInflightsCountLimit(t *testing.T) {
	in := newInflights(3, 0)
	if in.full() {
		t.Fatal("new inflights is full")
	}
	in.freeLE(100) // freeing an empty window is a no-op
	in.freeFirst()
	for i := uint64(1); i <= 3; i++ {
		in.add(i*10, 1)
	}
	if !in.full() {
		t.Errorf("3 of 3 in flight: not full")
	}
	in.freeLE(15) // frees 10 only
	if diff := cmp.Diff([]uint64{20, 30}, inflightLasts(in)); diff != "" {
		t.Errorf("after freeLE(15) (-want +got):\n%s", diff)
	}
	if in.full() || in.bytes != 2 {
		t.Errorf("after freeLE(15): full %v, bytes %d; want false, 2", in.full(), in.bytes)
	}
	// Wrap around the ring.
	in.add(40, 1)
	in.freeFirst() // frees 20 whatever its index
	in.add(50, 1)
	if diff := cmp.Diff([]uint64{30, 40, 50}, inflightLasts(in)); diff != "" {
		t.Errorf("after wrapping (-want +got):\n%s", diff)
	}
	if !in.full() {
		t.Error("3 of 3 in flight after wrapping: not full")
	}
	in.freeLE(5) // below every message: nothing freed
	if in.count != 3 {
		t.Errorf("freeLE below the window freed %d messages", 3-in.count)
	}
	in.freeLE(50)
	if in.count != 0 || in.bytes != 0 || in.start != 0 {
		t.Errorf("after freeing all: count %d bytes %d start %d, want 0 0 0", in.count, in.bytes, in.start)
	}
}

func TestInflightsByteLimit(t *testing.T) {
	in := newInflights(10, 100)
	in.add(1, 60)
	if in.full() {
		t.Error("60 of 100 bytes in flight: full")
	}
	in.add(2, 40)
	if !in.full() {
		t.Error("100 of 100 bytes in flight: not full")
	}
	in.freeLE(1)
	if in.full() || in.bytes != 40 {
		t.Errorf("after freeing 60 bytes: full %v, bytes %d; want false, 40", in.full(), in.bytes)
	}
	// One message may exceed the limit on its own; then the window is full.
	in.add(3, 500)
	if !in.full() || in.bytes != 540 {
		t.Errorf("after a 500-byte message: full %v, bytes %d; want true, 540", in.full(), in.bytes)
	}
	in.freeFirst()
	in.freeFirst()
	if in.full() || in.count != 0 || in.bytes != 0 {
		t.Errorf("after freeing all: full %v count %d bytes %d", in.full(), in.count, in.bytes)
	}
	// Without a byte limit only the count matters.
	unbounded := newInflights(2, 0)
	unbounded.add(1, 1<<40)
	if unbounded.full() {
		t.Error("byte limit 0 (none) counted bytes")
	}
}

func TestInflightsAddWhenFullPanics(t *testing.T) {
	in := newInflights(1, 0)
	in.add(1, 1)
	defer func() {
		if recover() == nil {
			t.Error("adding to a full window did not panic")
		}
	}()
	in.add(2, 1)
}

func TestInflightsReset(t *testing.T) {
	in := newInflights(2, 10)
	in.add(1, 5)
	in.add(2, 5)
	in.reset()
	if in.count != 0 || in.bytes != 0 || in.full() {
		t.Errorf("after reset: count %d bytes %d full %v", in.count, in.bytes, in.full())
	}
	in.add(7, 1)
	if diff := cmp.Diff([]uint64{7}, inflightLasts(in)); diff != "" {
		t.Errorf("after reset and add (-want +got):\n%s", diff)
	}
}

// TestInflightsModel drives inflights with seeded random operations and
// compares it after each one with a plain slice.
func TestInflightsModel(t *testing.T) {
	for seed := range uint64(50) {
		r := rand.New(rand.NewPCG(seed, 0x1f))
		maxCount, maxBytes := 1+r.IntN(6), uint64(r.IntN(3))*50
		in := newInflights(maxCount, maxBytes)
		type msg struct{ last, bytes uint64 }
		var model []msg
		var next uint64
		for step := range 300 {
			switch r.IntN(3) {
			case 0:
				if in.full() {
					continue
				}
				next += 1 + uint64(r.IntN(3))
				b := uint64(r.IntN(60))
				in.add(next, b)
				model = append(model, msg{next, b})
			case 1:
				to := next - min(next, uint64(r.IntN(6)))
				in.freeLE(to)
				for len(model) > 0 && model[0].last <= to {
					model = model[1:]
				}
			case 2:
				in.freeFirst()
				if len(model) > 0 {
					model = model[1:]
				}
			}
			var wantLasts []uint64
			var wantBytes uint64
			for _, m := range model {
				wantLasts = append(wantLasts, m.last)
				wantBytes += m.bytes
			}
			wantFull := len(model) >= maxCount || (maxBytes > 0 && wantBytes >= maxBytes)
			if diff := cmp.Diff(wantLasts, inflightLasts(in)); diff != "" || in.bytes != wantBytes || in.full() != wantFull {
				t.Fatalf("seed %d step %d: bytes %d (want %d), full %v (want %v), lasts (-want +got):\n%s",
					seed, step, in.bytes, wantBytes, in.full(), wantFull, diff)
			}
		}
	}
}

func newTestProgress(state ProgressState, match, next uint64) *progress {
	return &progress{Match: match, Next: next, State: state, Inflights: newInflights(4, 0)}
}

func TestProgressBecomeProbe(t *testing.T) {
	for _, tc := range []struct {
		name     string
		p        *progress
		wantNext uint64
	}{
		{"from replicate restarts after match", newTestProgress(StateReplicate, 5, 9), 6},
		{"from probe restarts after match", newTestProgress(StateProbe, 5, 9), 6},
		{"from snapshot resumes after the snapshot", func() *progress {
			p := newTestProgress(StateSnapshot, 5, 6)
			p.PendingSnapshot = 10
			return p
		}(), 11},
		{"from snapshot with match past it", func() *progress {
			p := newTestProgress(StateSnapshot, 12, 13)
			p.PendingSnapshot = 10
			return p
		}(), 13},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			if p.State == StateReplicate {
				p.Inflights.add(8, 1)
			}
			p.ProbeSent = true
			p.becomeProbe()
			if p.State != StateProbe || p.Next != tc.wantNext || p.ProbeSent || p.PendingSnapshot != 0 || p.Inflights.count != 0 {
				t.Errorf("after becomeProbe: %+v, inflight %d; want probe, Next %d, nothing pending or in flight",
					*p, p.Inflights.count, tc.wantNext)
			}
		})
	}
}

func TestProgressBecomeReplicateAndSnapshot(t *testing.T) {
	p := newTestProgress(StateProbe, 5, 9)
	p.ProbeSent = true
	p.becomeReplicate()
	if p.State != StateReplicate || p.Next != 6 || p.ProbeSent {
		t.Errorf("after becomeReplicate: %+v; want replicate, Next 6", *p)
	}
	p.Inflights.add(6, 1)
	p.becomeSnapshot(20)
	if p.State != StateSnapshot || p.PendingSnapshot != 20 || p.Inflights.count != 0 || !p.isPaused() {
		t.Errorf("after becomeSnapshot(20): %+v, inflight %d; want snapshot 20, empty window, paused", *p, p.Inflights.count)
	}
}

func TestProgressMaybeUpdate(t *testing.T) {
	p := newTestProgress(StateProbe, 5, 6)
	p.ProbeSent = true
	if p.maybeUpdate(4) || p.maybeUpdate(5) {
		t.Error("maybeUpdate with an index not beyond Match reported an update")
	}
	if p.Match != 5 || p.Next != 6 || !p.ProbeSent {
		t.Errorf("stale maybeUpdate changed the progress: %+v", *p)
	}
	if !p.maybeUpdate(8) || p.Match != 8 || p.Next != 9 || p.ProbeSent {
		t.Errorf("maybeUpdate(8): %+v; want Match 8, Next 9, probe unpaused", *p)
	}
	// Next never moves back on an update.
	r := newTestProgress(StateReplicate, 5, 20)
	if !r.maybeUpdate(10) || r.Match != 10 || r.Next != 20 {
		t.Errorf("maybeUpdate(10) with Next 20: %+v; want Match 10, Next 20", *r)
	}
}

func TestProgressSentEntries(t *testing.T) {
	r := newTestProgress(StateReplicate, 5, 6)
	r.sentEntries(8, 30, true)
	if r.Next != 9 || r.Inflights.count != 1 || r.Inflights.bytes != 30 {
		t.Errorf("replicate after sending up to 8: Next %d, inflight %d/%d bytes; want 9, 1/30", r.Next, r.Inflights.count, r.Inflights.bytes)
	}
	r.sentEntries(8, 0, false) // an empty MsgApp (commit only) takes no window slot
	if r.Next != 9 || r.Inflights.count != 1 {
		t.Errorf("replicate after an empty MsgApp: Next %d, inflight %d; want 9, 1", r.Next, r.Inflights.count)
	}
	for range 3 {
		r.sentEntries(r.Next, 1, true)
	}
	if !r.isPaused() {
		t.Error("replicate with a full window is not paused")
	}

	p := newTestProgress(StateProbe, 5, 6)
	if p.isPaused() {
		t.Error("probe before sending is paused")
	}
	p.sentEntries(7, 10, true)
	if !p.ProbeSent || !p.isPaused() || p.Next != 6 || p.Inflights.count != 0 {
		t.Errorf("probe after sending: %+v; want paused, Next unchanged, no window use", *p)
	}
}

func TestProgressMaybeDecrTo(t *testing.T) {
	for _, tc := range []struct {
		name            string
		state           ProgressState
		match, next     uint64
		rejected, hint  uint64
		want            bool
		wantNext        uint64
		wantProbeSentOK bool // ProbeSent must be false afterwards
	}{
		{name: "replicate: stale rejection at match is ignored", state: StateReplicate,
			match: 5, next: 10, rejected: 5, hint: 2, want: false, wantNext: 10},
		{name: "replicate: stale rejection below match is ignored", state: StateReplicate,
			match: 5, next: 10, rejected: 3, hint: 2, want: false, wantNext: 10},
		{name: "replicate: real rejection restarts after match", state: StateReplicate,
			match: 5, next: 10, rejected: 7, hint: 6, want: true, wantNext: 6},
		{name: "probe: answer to an older probe is ignored", state: StateProbe,
			match: 0, next: 10, rejected: 5, hint: 3, want: false, wantNext: 10},
		{name: "probe: hint below the probe", state: StateProbe,
			match: 0, next: 10, rejected: 9, hint: 4, want: true, wantNext: 5, wantProbeSentOK: true},
		{name: "probe: hint at or above the probe still backs off", state: StateProbe,
			match: 0, next: 10, rejected: 9, hint: 20, want: true, wantNext: 9, wantProbeSentOK: true},
		{name: "probe: never below match+1", state: StateProbe,
			match: 6, next: 10, rejected: 9, hint: 2, want: true, wantNext: 7, wantProbeSentOK: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestProgress(tc.state, tc.match, tc.next)
			p.ProbeSent = true
			got := p.maybeDecrTo(tc.rejected, tc.hint)
			if got != tc.want || p.Next != tc.wantNext || p.Match != tc.match {
				t.Errorf("maybeDecrTo(%d, %d) = %v with Next %d Match %d; want %v, Next %d, Match %d",
					tc.rejected, tc.hint, got, p.Next, p.Match, tc.want, tc.wantNext, tc.match)
			}
			if tc.wantProbeSentOK && p.ProbeSent {
				t.Error("an accepted probe rejection left the stream paused")
			}
			if !tc.want && !p.ProbeSent {
				t.Error("an ignored rejection changed ProbeSent")
			}
		})
	}
}

func TestProgressStateString(t *testing.T) {
	for s, want := range map[ProgressState]string{
		StateProbe: "probe", StateReplicate: "replicate", StateSnapshot: "snapshot", 0: "ProgressState(0)",
	} {
		if got := s.String(); got != want {
			t.Errorf("ProgressState(%d).String() = %q, want %q", uint8(s), got, want)
		}
	}
}
