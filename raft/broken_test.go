package raft_test

import (
	"testing"

	"github.com/flotilla-dev/flotilla/raft"
	"github.com/flotilla-dev/flotilla/sim"
)

// TestSimCatchesBrokenRules proves the simulator's checks can fail: with a
// deliberately broken protocol rule switched on, some of the CI's 300 seeds
// must report a violation.
func TestSimCatchesBrokenRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		hook func(*raft.Config)
		opts sim.Options
	}{
		// Raft §5.4.1: without the up-to-date check a node with a short log
		// wins and overwrites committed entries.
		{"vote-without-log-check", raft.BreakVoteLogCheck, sim.Options{}},
		// Raft §5.4.2, Figure 8: committing an old-term entry by counting
		// replicas lets a later leader overwrite it. The scenario needs three
		// leader changes in a row, so it shows up in long 3-node runs.
		{"commit-previous-term", raft.BreakCommitPreviousTerm, sim.Options{Nodes: 3, Steps: 20000}},
		// Dissertation §10.2.1: a leader may write its log in parallel, but
		// must not count itself before its copy is durable; otherwise a
		// crash loses entries a "quorum" acknowledged.
		{"async-leader-counts-itself-early", raft.BreakAsyncDurability, sim.Options{Nodes: 3}},
		// Dissertation §6.4: a deposed leader that answers reads without
		// confirming its leadership with a quorum serves stale data.
		{"read-without-confirmation", raft.BreakReadConfirmation, sim.Options{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.ConfigHook = tc.hook
			sum := sim.RunSeeds(opts, 1, 300, 0)
			if len(sum.Violations) == 0 {
				t.Fatalf("none of %d seeds caught the broken rule", sum.Seeds)
			}
			v := sum.Violations[0]
			t.Logf("%d of %d seeds caught it; first: %v", len(sum.Violations), sum.Seeds, v)
			switch v.Property {
			case "Leader Completeness", "State Machine Safety", "Log Matching", "Read Linearizability":
			default:
				t.Errorf("seed %d: caught as %q, want a safety property; detail: %s", v.Seed, v.Property, v.Detail)
			}
		})
	}
}
