package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/flotilla-dev/flotilla/explore"
	"github.com/spf13/cobra"
)

func newExploreCmd() *cobra.Command {
	return newGroup("explore", "Exhaustively explore bounded executions of the consensus cores",
		"  flotilla explore raft --depth 8", newExploreRaftCmd())
}

func newExploreRaftCmd() *cobra.Command {
	o := explore.DefaultOptions()
	var (
		noDrops, noDups, noHeartbeats bool
		asJSON                        bool
	)
	cmd := &cobra.Command{
		Use:   "raft",
		Short: "Model-check the Raft core: every sequence of actions up to a depth",
		Long: `Searches breadth first over every sequence of actions up to --depth on a
cluster of pure Raft cores: election timeouts (campaign), leader ticks
(heartbeat), proposals, handling one Ready (persist, send, apply, Advance),
delivering, duplicating and dropping each in-flight message, crashes and
restarts. It replays each sequence on the real code, checks Election
Safety, Log Matching, Leader Completeness, State Machine Safety and that
terms never decrease after every action, and prunes states already seen
(by a hash of their observable state; see docs/raft.md, "The explorer").

The bounds (--max-inflight, --max-term, --max-crashes, --max-proposals)
keep the space finite. A violation prints the property and the shortest
action trace found, one action per line; the exit status is then 1.
--broken-host runs a host that does not persist votes, and --broken-entries
one that acknowledges entries it loses in a crash, to show that the
explorer catches a broken system.`,
		Example: `  flotilla explore raft --depth 8
  flotilla explore raft --depth 20 --duration 60s --json
  flotilla explore raft --depth 20 --duration 60s --auto-ready
  flotilla explore raft --depth 12 --broken-host --max-term 1 --max-proposals 0 --no-drops --no-duplicates --no-heartbeats
  flotilla explore raft --depth 10 --auto-ready --broken-entries --max-term 2 --max-proposals 0 --no-drops --no-duplicates --no-heartbeats`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Depth < 0 {
				return usageError{fmt.Errorf("--depth must not be negative, got %d", o.Depth)}
			}
			if o.Nodes < 1 || o.Nodes > 5 {
				return usageError{fmt.Errorf("--nodes must be between 1 and 5, got %d", o.Nodes)}
			}
			if o.MaxInFlight < 1 {
				return usageError{fmt.Errorf("--max-inflight must be at least 1, got %d", o.MaxInFlight)}
			}
			if o.MaxStates < 0 || o.MaxTerm < 0 || o.MaxCrashes < 0 || o.MaxProposals < 0 || o.MaxDuration < 0 {
				return usageError{fmt.Errorf("bounds must not be negative")}
			}
			o.Drops, o.Duplicates, o.Heartbeats = !noDrops, !noDups, !noHeartbeats
			r, err := explore.Explore(o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if err := writeExploreJSON(out, r); err != nil {
					return err
				}
			} else {
				writeExploreSummary(out, r)
			}
			if v := r.Violation; v != nil {
				fmt.Fprint(cmd.ErrOrStderr(), v.Report())
				return exitError{code: 1, msg: fmt.Sprintf("%s violated after %d actions", v.Property, len(v.Actions))}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Depth, "depth", o.Depth, "longest action sequence explored")
	f.IntVar(&o.Nodes, "nodes", o.Nodes, "cluster size (1 to 5)")
	f.IntVar(&o.MaxStates, "max-states", o.MaxStates, "stop after this many distinct states (0: no bound)")
	f.DurationVar(&o.MaxDuration, "duration", 0, "stop after this much wall time (0: no bound)")
	f.IntVar(&o.MaxInFlight, "max-inflight", o.MaxInFlight, "no campaign or heartbeat while this many messages are in flight")
	f.IntVar(&o.MaxTerm, "max-term", o.MaxTerm, "nodes campaign only below this term")
	f.IntVar(&o.MaxCrashes, "max-crashes", o.MaxCrashes, "crashes per action sequence")
	f.IntVar(&o.MaxProposals, "max-proposals", o.MaxProposals, "client proposals per action sequence")
	f.BoolVar(&noDrops, "no-drops", false, "never drop a message")
	f.BoolVar(&noDups, "no-duplicates", false, "never duplicate a message")
	f.BoolVar(&noHeartbeats, "no-heartbeats", false, "never tick a leader")
	f.BoolVar(&o.PreVote, "prevote", false, "run the cores with pre-vote")
	f.BoolVar(&o.AutoReady, "auto-ready", false, "handle each Ready right after the action that caused it (shorter sequences, deeper search)")
	f.BoolVar(&o.BrokenHost, "broken-host", false, "use a host that does not persist votes (a negative control)")
	f.BoolVar(&o.BrokenEntries, "broken-entries", false, "use a host that loses unsynced entries in a crash after acknowledging them (a negative control)")
	f.IntVar(&o.Workers, "parallel", 0, "goroutines replaying states (0: GOMAXPROCS)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func writeExploreSummary(w io.Writer, r explore.Result) {
	fmt.Fprintf(w, "depth reached     %d", r.Depth)
	switch {
	case r.Complete:
		fmt.Fprint(w, " (state space exhausted within the bounds)")
	case r.Truncated:
		fmt.Fprint(w, " (stopped by --max-states or --duration)")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "states explored   %d\n", r.Explored)
	fmt.Fprintf(w, "distinct states   %d\n", r.Distinct)
	fmt.Fprintf(w, "wall time         %v\n", r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "states per second %.0f\n", r.StatesPerSecond())
	fmt.Fprintf(w, "violation         %s\n", violationName(r.Violation))
	fmt.Fprintln(w, "depth  explored  new")
	for _, l := range r.Levels {
		fmt.Fprintf(w, "%5d  %8d  %d\n", l.Depth, l.Explored, l.New)
	}
}

func violationName(v *explore.Violation) string {
	if v == nil {
		return "none"
	}
	return v.Property
}

func writeExploreJSON(w io.Writer, r explore.Result) error {
	type violation struct {
		Property string   `json:"property"`
		Detail   string   `json:"detail"`
		Trace    []string `json:"trace"`
	}
	type level struct {
		Depth    int `json:"depth"`
		Explored int `json:"explored"`
		New      int `json:"new"`
	}
	out := struct {
		Depth           int        `json:"depth"`
		Explored        int        `json:"explored"`
		Distinct        int        `json:"distinct"`
		Complete        bool       `json:"complete"`
		Truncated       bool       `json:"truncated"`
		Seconds         float64    `json:"seconds"`
		StatesPerSecond float64    `json:"states_per_second"`
		Levels          []level    `json:"levels"`
		Violation       *violation `json:"violation"`
	}{
		Depth: r.Depth, Explored: r.Explored, Distinct: r.Distinct, Complete: r.Complete, Truncated: r.Truncated,
		Seconds: r.Elapsed.Seconds(), StatesPerSecond: r.StatesPerSecond(),
	}
	for _, l := range r.Levels {
		out.Levels = append(out.Levels, level(l))
	}
	if v := r.Violation; v != nil {
		out.Violation = &violation{Property: v.Property, Detail: v.Detail, Trace: v.Trace}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
