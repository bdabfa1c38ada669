package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/flotilla-dev/flotilla/sim"
	"github.com/spf13/cobra"
)

func newSimCmd() *cobra.Command {
	return newGroup("sim", "Run deterministic simulations that try to break the consensus cores",
		"  flotilla sim raft --seeds 1000", newSimRaftCmd())
}

func newSimRaftCmd() *cobra.Command {
	var (
		seeds, nodes, steps, parallel int
		seed                          int64
		traceFile, vizDir             string
		asJSON                        bool
	)
	cmd := &cobra.Command{
		Use:   "raft",
		Short: "Simulate Raft clusters under seeded faults and check safety and liveness",
		Long: `Runs seeds S, S+1, ... S+N-1. Each seed simulates a Raft cluster of 3 to 7
nodes (or --nodes) on a network that drops, duplicates, delays, reorders and
partitions messages, with nodes that crash and restart and clients that
propose commands, read through ReadIndex, transfer leadership and change
the membership. After every event it checks Election Safety, Leader
Append-Only, Log Matching, Leader Completeness, State Machine Safety and
that every confirmed read covers every acknowledged write; after the faults
stop it checks that a leader is elected and every acknowledged command is
applied everywhere.

Each seed also runs three KV clients against the real kv.Store and rsm
sessions (Get through the log or ReadIndex, Put, Append, CAS, Delete, with
retries), and checks their history for linearizability with porcupine. A
history that is not linearizable is a violation, and porcupine's HTML
visualization, annotated with leader changes and faults, is written to
--viz-dir.

One seed determines a run exactly: the same seed gives the same trace.
A violation prints the seed, the property, the last events and the command
that replays it; the exit status is then 1.`,
		Example: `  flotilla sim raft --seeds 1000
  flotilla sim raft --seeds 200 --nodes 5 --steps 10000
  flotilla sim raft --seed 42 --seeds 1 --trace seed-42.trace`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if seeds < 1 {
				return usageError{fmt.Errorf("--seeds must be at least 1, got %d", seeds)}
			}
			if nodes != 0 && (nodes < 1 || nodes > 9) {
				return usageError{fmt.Errorf("--nodes must be between 1 and 9 (0 picks 3 to 7 per seed), got %d", nodes)}
			}
			if steps < 1 {
				return usageError{fmt.Errorf("--steps must be at least 1, got %d", steps)}
			}
			opts := sim.Options{Nodes: nodes, Steps: steps, VisualizationDir: vizDir}
			if traceFile != "" {
				if seeds != 1 {
					return usageError{fmt.Errorf("--trace records one run: use it with --seeds 1")}
				}
				f, err := os.Create(traceFile)
				if err != nil {
					return fmt.Errorf("opening trace file: %w", err)
				}
				defer f.Close()
				opts.Trace = f
			}
			sum := sim.RunSeeds(opts, seed, seeds, parallel)
			out := cmd.OutOrStdout()
			if asJSON {
				if err := writeSimJSON(out, sum); err != nil {
					return err
				}
			} else {
				writeSimSummary(out, sum, seed)
			}
			for _, v := range sum.Violations {
				fmt.Fprint(cmd.ErrOrStderr(), v.Report())
			}
			if len(sum.Violations) > 0 {
				return exitError{code: 1, msg: fmt.Sprintf("%d of %d seeds violated a property", len(sum.Violations), sum.Seeds)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&seeds, "seeds", 100, "number of seeds to run")
	f.Int64Var(&seed, "seed", 1, "first seed")
	f.IntVar(&nodes, "nodes", 0, "cluster size (0: 3 to 7, chosen per seed)")
	f.IntVar(&steps, "steps", sim.DefaultSteps, "events in the faulty phase of each seed")
	f.IntVar(&parallel, "parallel", runtime.GOMAXPROCS(0), "seeds simulated at once")
	f.StringVar(&traceFile, "trace", "", "write the full event trace of the run to this file (with --seeds 1)")
	f.BoolVar(&asJSON, "json", false, "print the summary as JSON")
	f.StringVar(&vizDir, "viz-dir", ".", "where to write the HTML visualization of a history that is not linearizable")
	return cmd
}

func writeSimSummary(w io.Writer, s sim.Summary, first int64) {
	fmt.Fprintf(w, "seeds run         %d (%d..%d)\n", s.Seeds, first, first+int64(s.Seeds)-1)
	fmt.Fprintf(w, "violations        %d\n", len(s.Violations))
	fmt.Fprintf(w, "elections         %d\n", s.Elections)
	fmt.Fprintf(w, "commits           %d (highest commit index, summed over seeds)\n", s.Commits)
	fmt.Fprintf(w, "proposals         %d (%d acknowledged)\n", s.Proposals, s.Acked)
	fmt.Fprintf(w, "reads             %d (%d confirmed by ReadIndex)\n", s.Reads, s.ReadsServed)
	fmt.Fprintf(w, "kv operations     %d, histories checked linearizable with porcupine (%d checks timed out)\n", s.KVOps, s.LinUnknown)
	fmt.Fprintf(w, "messages          %d sent, %d dropped, %d duplicated\n", s.MsgsSent, s.MsgsDropped, s.MsgsDuplicated)
	fmt.Fprintf(w, "faults            %d crashes, %d partitions, %d leadership transfers, %d membership changes\n", s.Crashes, s.Partitions, s.Transfers, s.ConfChanges)
	fmt.Fprintf(w, "steps             %d\n", s.Steps)
	fmt.Fprintf(w, "virtual time      %v\n", s.VirtualTime.Round(1e6))
	fmt.Fprintf(w, "wall time         %v\n", s.WallTime.Round(1e6))
	fmt.Fprintf(w, "seeds per second  %.1f\n", s.SeedsPerSecond())
}

func writeSimJSON(w io.Writer, s sim.Summary) error {
	type violation struct {
		Seed     int64  `json:"seed"`
		Property string `json:"property"`
		Detail   string `json:"detail"`
		Replay   string `json:"replay"`
	}
	out := struct {
		Seeds          int         `json:"seeds"`
		Violations     []violation `json:"violations"`
		Elections      int         `json:"elections"`
		Commits        uint64      `json:"commits"`
		Proposals      int         `json:"proposals"`
		Acked          int         `json:"acked"`
		Reads          int         `json:"reads"`
		KVOps          int         `json:"kv_operations"`
		LinUnknown     int         `json:"linearizability_timeouts"`
		ReadsServed    int         `json:"reads_confirmed"`
		MsgsSent       int         `json:"messages_sent"`
		MsgsDropped    int         `json:"messages_dropped"`
		MsgsDuplicated int         `json:"messages_duplicated"`
		Crashes        int         `json:"crashes"`
		Partitions     int         `json:"partitions"`
		Transfers      int         `json:"leadership_transfers"`
		ConfChanges    int         `json:"membership_changes"`
		Steps          int         `json:"steps"`
		VirtualSeconds float64     `json:"virtual_seconds"`
		WallSeconds    float64     `json:"wall_seconds"`
		SeedsPerSecond float64     `json:"seeds_per_second"`
	}{
		Seeds: s.Seeds, Violations: []violation{}, Elections: s.Elections, Commits: s.Commits,
		Proposals: s.Proposals, Acked: s.Acked, Reads: s.Reads, KVOps: s.KVOps, LinUnknown: s.LinUnknown, ReadsServed: s.ReadsServed, MsgsSent: s.MsgsSent, MsgsDropped: s.MsgsDropped,
		MsgsDuplicated: s.MsgsDuplicated, Crashes: s.Crashes, Partitions: s.Partitions, Transfers: s.Transfers, ConfChanges: s.ConfChanges, Steps: s.Steps,
		VirtualSeconds: s.VirtualTime.Seconds(), WallSeconds: s.WallTime.Seconds(), SeedsPerSecond: s.SeedsPerSecond(),
	}
	for _, v := range s.Violations {
		out.Violations = append(out.Violations, violation{v.Seed, v.Property, v.Detail, v.Replay})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
