package explore

import (
	"errors"
	"math/rand/v2"
	"testing"
)

// small restricts the actions to elections, Readies, deliveries and one
// crash in term 1: small enough to search 12 actions deep in a second.
func small() Options {
	o := DefaultOptions()
	o.Depth = 12
	o.Drops, o.Duplicates, o.Heartbeats = false, false, false
	o.MaxProposals = 0
	o.MaxTerm = 1
	return o
}

func TestRealCoreDefaultBounds(t *testing.T) {
	o := DefaultOptions()
	o.Depth = 6
	r, err := Explore(o)
	if err != nil {
		t.Fatal(err)
	}
	if r.Violation != nil {
		t.Fatalf("the real core violates an invariant:\n%s", r.Violation.Report())
	}
	if r.Explored < 10000 || r.Depth != 6 {
		t.Fatalf("explored %d states to depth %d, want over 10000 to depth 6", r.Explored, r.Depth)
	}
	t.Logf("depth %d: %d states explored, %d distinct, %.0f states/s", r.Depth, r.Explored, r.Distinct, r.StatesPerSecond())
}

func TestRealCoreElectionsDeep(t *testing.T) {
	r, err := Explore(small())
	if err != nil {
		t.Fatal(err)
	}
	if r.Violation != nil {
		t.Fatalf("the real core violates an invariant:\n%s", r.Violation.Report())
	}
	if r.Depth != 12 || r.Explored < 10000 {
		t.Fatalf("explored %d states to depth %d, want over 10000 to depth 12", r.Explored, r.Depth)
	}
	t.Logf("depth %d: %d states explored, %d distinct, %.0f states/s", r.Depth, r.Explored, r.Distinct, r.StatesPerSecond())
}

// TestBrokenHostCaught is the negative control: a host that does not
// persist its vote lets a node vote twice in one term across a crash, and
// the explorer must find the two leaders with a shortest trace.
func TestBrokenHostCaught(t *testing.T) {
	o := small()
	o.BrokenHost = true
	r, err := Explore(o)
	if err != nil {
		t.Fatal(err)
	}
	v := r.Violation
	if v == nil {
		t.Fatalf("no violation found in %d states to depth %d", r.Explored, r.Depth)
	}
	if v.Property != "Election Safety" {
		t.Fatalf("found %s, want Election Safety:\n%s", v.Property, v.Report())
	}
	// Two elections of 5 actions each (campaign, ready, deliver the vote
	// request, ready, deliver the grant) sharing one voter that crashes
	// and restarts in between: 12 actions. BFS finds no longer trace.
	if len(v.Trace) > 12 || len(v.Trace) != len(v.Actions) {
		t.Fatalf("trace of %d actions (%d lines), want at most 12:\n%s", len(v.Actions), len(v.Trace), v.Report())
	}
	// The trace replays to the same violation.
	if _, again, _ := Hash(o, v.Actions); again == nil || again.Property != v.Property {
		t.Fatalf("replaying the trace gives %v, want %s", again, v.Property)
	}
	t.Log(v.Report())
}

// TestReplayDeterministic walks random action sequences and checks that
// the same sequence always yields the same state hash.
func TestReplayDeterministic(t *testing.T) {
	o := DefaultOptions()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		var acts []Action
		for range 20 {
			en, err := Enabled(o, acts)
			if err != nil {
				t.Fatal(err)
			}
			if len(en) == 0 {
				break
			}
			acts = append(acts, en[rng.IntN(len(en))])
		}
		h1, v1, _ := Hash(o, acts)
		h2, v2, _ := Hash(o, acts)
		if h1 != h2 || (v1 == nil) != (v2 == nil) {
			t.Fatalf("replaying %v twice gave %x and %x", acts, h1, h2)
		}
		if v1 != nil {
			t.Fatalf("random walk broke %s: %s", v1.Property, v1.Detail)
		}
		// The search's shortcut (clone the parent, rebuild only the cores
		// the last action touches) must reach the same hash.
		if len(acts) == 0 {
			continue
		}
		if err := o.validate(); err != nil {
			t.Fatal(err)
		}
		parent := replay(&o, acts[:len(acts)-1], false)
		segs := parent.segments()
		c := parent.clone()
		c.step(acts[len(acts)-1])
		if h3 := c.hash(segs); h3 != h1 {
			t.Fatalf("%v: cloned parent gives hash %x, full replay %x", acts, h3, h1)
		}
	}
}

// TestWorkersDoNotChangeResult checks that the search is deterministic
// whatever the parallelism.
func TestWorkersDoNotChangeResult(t *testing.T) {
	o := DefaultOptions()
	o.Depth = 5
	var got []Result
	for _, n := range []int{1, 3} {
		o.Workers = n
		r, err := Explore(o)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if got[0].Explored != got[1].Explored || got[0].Distinct != got[1].Distinct {
		t.Fatalf("1 worker: %d/%d states, 3 workers: %d/%d", got[0].Explored, got[0].Distinct, got[1].Explored, got[1].Distinct)
	}
}

func TestInvalidOptions(t *testing.T) {
	o := DefaultOptions()
	o.Nodes = 0
	if _, err := Explore(o); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("Explore with 0 nodes: %v, want ErrInvalidOptions", err)
	}
}

func TestMaxStatesTruncates(t *testing.T) {
	o := DefaultOptions()
	o.MaxStates = 500
	r, err := Explore(o)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Truncated || r.Distinct > 500+2048*60 {
		t.Fatalf("MaxStates 500: truncated %v with %d distinct", r.Truncated, r.Distinct)
	}
}

// TestAutoReady checks the driver-loop mode: clean on the real core, and
// the broken host is caught with a shorter trace (no Ready actions).
func TestAutoReady(t *testing.T) {
	o := DefaultOptions()
	o.AutoReady = true
	o.Depth = 6
	r, err := Explore(o)
	if err != nil {
		t.Fatal(err)
	}
	if r.Violation != nil {
		t.Fatalf("the real core violates an invariant:\n%s", r.Violation.Report())
	}
	t.Logf("depth %d: %d states explored, %d distinct, %.0f states/s", r.Depth, r.Explored, r.Distinct, r.StatesPerSecond())
	o = small()
	o.AutoReady, o.BrokenHost = true, true
	r, err = Explore(o)
	if err != nil {
		t.Fatal(err)
	}
	if v := r.Violation; v == nil || v.Property != "Election Safety" || len(v.Actions) != 8 {
		t.Fatalf("broken host with AutoReady: got %+v, want Election Safety after 8 actions", v)
	}
}

// TestBrokenEntriesCaught is the second negative control: a host that
// acknowledges entries it never syncs loses a committed entry in a crash,
// and the next leader lacks it.
func TestBrokenEntriesCaught(t *testing.T) {
	o := small()
	o.AutoReady, o.BrokenEntries = true, true
	o.MaxTerm, o.Depth = 2, 10
	r, err := Explore(o)
	if err != nil {
		t.Fatal(err)
	}
	v := r.Violation
	if v == nil {
		t.Fatalf("no violation found in %d states to depth %d", r.Explored, r.Depth)
	}
	if v.Property != "Leader Completeness" && v.Property != "State Machine Safety" {
		t.Fatalf("found %s, want Leader Completeness or State Machine Safety:\n%s", v.Property, v.Report())
	}
	t.Logf("%d states explored\n%s", r.Explored, v.Report())
}

// TestPruningLosesNothing checks the hash's approximation where it can be
// checked: every state a search without pruning reaches within a depth is
// reached by the pruned search too. A hash that merged two states with
// different futures would lose the successors of one of them.
func TestPruningLosesNothing(t *testing.T) {
	cases := map[string]Options{"default bounds": DefaultOptions(), "elections": small()}
	cases["default bounds"] = withDepth(cases["default bounds"], 5)
	cases["elections"] = withDepth(cases["elections"], 7)
	for name, o := range cases {
		t.Run(name, func(t *testing.T) {
			reached := func(prune bool) map[StateHash]bool {
				got := map[StateHash]bool{}
				o := o
				o.noPrune = !prune
				o.onState = func(h StateHash) { got[h] = true }
				o.Workers, o.MaxStates = 1, 0
				if _, err := Explore(o); err != nil {
					t.Fatal(err)
				}
				return got
			}
			pruned, full := reached(true), reached(false)
			missing := 0
			for h := range full {
				if !pruned[h] {
					missing++
				}
			}
			if missing > 0 || len(pruned) != len(full) {
				t.Fatalf("pruned search reached %d states, unpruned %d; %d missing", len(pruned), len(full), missing)
			}
			t.Logf("%d states at depth %d, with and without pruning", len(full), o.Depth)
		})
	}
}

func withDepth(o Options, d int) Options {
	o.Depth = d
	return o
}
