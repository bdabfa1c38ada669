package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/flotilla-dev/flotilla/nemesis"
)

func newNemesisCmd() *cobra.Command {
	var (
		o              nemesis.Options
		faults, binary string
	)
	cmd := &cobra.Command{
		Use:   "nemesis",
		Short: "Run a local KV cluster of real processes under faults and check it",
		Long: `Starts a local cluster of flotilla kv serve processes on 127.0.0.1 (with
fsync on and --fault-injection), runs concurrent clients doing Get, Put,
Append, CAS and Delete on a few keys, and injects faults from a seeded
schedule, one at a time, half of them aimed at the leader:

  kill       kill -9 a member, restart it on its data directory later
  pause      SIGSTOP a member, SIGCONT it later
  partition  isolate a member: its transport drops all traffic both ways
  oneway     drop the messages from one member to another, not back

After --duration it heals everything, waits until every member reports the
same applied index, and checks that the history (closed by a final read of
every key) is linearizable, that every acknowledged append is in the final
state exactly once, and that every member has the same state hash and the
same values. It writes summary.txt and timeline.html (porcupine's view of
the history, with the faults on their own row) to --report, prints the
summary, and exits 1 on any violation.

The seed fixes the schedule and the clients' choices, not the timing of
real processes: rerunning a seed gives a similar run, not the same one.
See docs/nemesis.md.`,
		Example: `  flotilla nemesis --duration 60s
  flotilla nemesis --duration 10m --faults kill,pause --seed 7 --report /tmp/nemesis-7
  flotilla nemesis --duration 30s --faults partition,oneway --nodes 5 --clients 8`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.Faults, err = nemesis.ParseFaults(faults); err != nil {
				return usageError{err}
			}
			if o.Nodes < 3 || o.Clients < 1 || o.Duration <= 0 {
				return usageError{errors.New("--nodes must be at least 3, --clients at least 1 and --duration positive")}
			}
			if !cmd.Flags().Changed("seed") {
				o.Seed = time.Now().UnixNano() % 1_000_000
			}
			if o.ReportDir == "" {
				o.ReportDir = "nemesis-" + time.Now().Format("20060102-150405")
			}
			if o.Binary = binary; o.Binary == "" {
				if o.Binary, err = os.Executable(); err != nil {
					return fmt.Errorf("finding the flotilla binary: %w (pass --binary)", err)
				}
			}
			out := cmd.OutOrStdout()
			o.Progress = out
			fmt.Fprintf(out, "nemesis: seed %d, %d members, %d clients, %v of faults; report in %s\n", o.Seed, o.Nodes, o.Clients, o.Duration, o.ReportDir)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := nemesis.Run(ctx, o)
			if err != nil {
				if errors.Is(err, context.Canceled) {
					return fmt.Errorf("interrupted; member logs in %s/cluster", o.ReportDir)
				}
				return err
			}
			fmt.Fprint(out, "\n"+res.Summary())
			if err := res.Err(); err != nil {
				return exitError{code: 1, msg: err.Error()}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.Duration, "duration", 60*time.Second, "how long the clients run under faults (the heal and checks take a few seconds more)")
	f.StringVar(&faults, "faults", "kill,pause,partition,oneway,slow-fsync", "faults to inject, comma-separated: kill, pause, partition, oneway, slow-fsync (empty: none)")
	f.Int64Var(&o.Seed, "seed", 0, "seed of the fault schedule and the clients (default: from the clock, printed)")
	f.IntVar(&o.Nodes, "nodes", 3, "cluster members")
	f.IntVar(&o.Clients, "clients", 4, "concurrent clients, each one operation at a time")
	f.DurationVar(&o.Tick, "tick", 20*time.Millisecond, "the members' Raft tick (elections after 10-20 ticks)")
	f.DurationVar(&o.KeyEpoch, "key-epoch", 5*time.Second, "how long the clients use the same keys before moving to fresh ones (keeps each key's history short enough to check)")
	f.DurationVar(&o.OpTimeout, "op-timeout", 3*time.Second, "bound of one client operation; a slower one has an unknown outcome")
	f.DurationVar(&o.CheckTimeout, "check-timeout", 2*time.Minute, "bound of the linearizability check; a check that takes longer is inconclusive, a failure")
	f.BoolVar(&o.NoSync, "no-sync", false, "start members with --no-sync (unsafe, though kill -9 keeps the page cache, so nothing acknowledged is lost by it)")
	f.BoolVar(&o.StaleReads, "stale-reads", false, "negative control: read with serializable reads from random members; the linearizability check must fail")
	f.StringVar(&o.ReportDir, "report", "", "report directory (default ./nemesis-DATE-TIME)")
	f.StringVar(&binary, "binary", "", "flotilla binary for the members (default: this one)")
	return cmd
}
