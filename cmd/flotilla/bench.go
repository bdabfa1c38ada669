package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/flotilla-dev/flotilla/node"
	"github.com/flotilla-dev/flotilla/raft"
	"github.com/spf13/cobra"
)

func newBenchCmd() *cobra.Command {
	return newGroup("bench", "Measure flotilla's systems",
		"  flotilla bench raft --clients 64 --duration 10s", newBenchRaftCmd(), newBenchKVCmd())
}

type benchRaftOpts struct {
	nodes, clients, valueSize int
	duration, warmup          time.Duration
	dataDir                   string
	noSync, asJSON            bool
}

func newBenchRaftCmd() *cobra.Command {
	var o benchRaftOpts
	cmd := &cobra.Command{
		Use:   "raft",
		Short: "Benchmark replicated proposals: N nodes in one process over loopback TCP, fsync on",
		Long: `Starts --nodes Raft nodes in this process, talking over TCP on 127.0.0.1
with write-ahead logs under --data-dir (fsync on unless --no-sync), waits for
a leader, then runs --clients concurrent proposers on the leader for
--duration. Each proposal is a --value-size byte command that returns once
it is committed and applied on the leader. Prints proposals per second and
latency percentiles.`,
		Example: `  flotilla bench raft --clients 1 --duration 10s
  flotilla bench raft --clients 64 --duration 10s --data-dir /tmp/fl-bench
  flotilla bench raft --clients 256 --duration 10s --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case o.nodes < 1 || o.nodes > 9:
				return usageError{fmt.Errorf("--nodes must be 1 to 9, got %d", o.nodes)}
			case o.clients < 1:
				return usageError{fmt.Errorf("--clients must be at least 1, got %d", o.clients)}
			case o.valueSize < 1 || o.valueSize > 1<<20:
				return usageError{fmt.Errorf("--value-size must be 1 to 1048576 bytes, got %d", o.valueSize)}
			case o.duration <= 0:
				return usageError{fmt.Errorf("--duration must be positive, got %v", o.duration)}
			}
			res, err := benchRaft(cmd.Context(), o)
			if err != nil {
				return err
			}
			if o.asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			res.print(cmd.OutOrStdout())
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.nodes, "nodes", 3, "cluster size")
	f.IntVar(&o.clients, "clients", 64, "concurrent proposers")
	f.IntVar(&o.valueSize, "value-size", 256, "bytes per command")
	f.DurationVar(&o.duration, "duration", 10*time.Second, "measured time")
	f.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load before the measurement")
	f.StringVar(&o.dataDir, "data-dir", "", "directory for the nodes' WALs (default: a temporary directory, removed afterwards)")
	f.BoolVar(&o.noSync, "no-sync", false, "skip fsync (unsafe; measures the CPU path only)")
	f.BoolVar(&o.asJSON, "json", false, "print the result as JSON")
	return cmd
}

type benchRaftResult struct {
	Command      string  `json:"command"`
	Nodes        int     `json:"nodes"`
	Clients      int     `json:"clients"`
	ValueSize    int     `json:"value_size"`
	Fsync        bool    `json:"fsync"`
	Seconds      float64 `json:"seconds"`
	Proposals    int     `json:"proposals"`
	Errors       int     `json:"errors"`
	PerSecond    float64 `json:"proposals_per_second"`
	P50Micros    float64 `json:"p50_us"`
	P90Micros    float64 `json:"p90_us"`
	P99Micros    float64 `json:"p99_us"`
	P999Micros   float64 `json:"p999_us"`
	MaxMicros    float64 `json:"max_us"`
	Fsyncs       uint64  `json:"leader_fsyncs"`
	LeaderChange uint64  `json:"leader_changes"`
	FirstError   string  `json:"first_error,omitempty"`
}

func (r benchRaftResult) print(w io.Writer) {
	fmt.Fprintf(w, "%s\n", r.Command)
	fmt.Fprintf(w, "nodes %d, clients %d, value %d B, fsync %v, %.1f s\n", r.Nodes, r.Clients, r.ValueSize, r.Fsync, r.Seconds)
	fmt.Fprintf(w, "proposals      %d (%d errors)\n", r.Proposals, r.Errors)
	if r.FirstError != "" {
		fmt.Fprintf(w, "first error    %s\n", r.FirstError)
	}
	fmt.Fprintf(w, "throughput     %.0f proposals/s\n", r.PerSecond)
	fmt.Fprintf(w, "latency        p50 %.0f us  p90 %.0f us  p99 %.0f us  p99.9 %.0f us  max %.0f us\n",
		r.P50Micros, r.P90Micros, r.P99Micros, r.P999Micros, r.MaxMicros)
	fmt.Fprintf(w, "leader fsyncs  %d (%.1f proposals per fsync)\n", r.Fsyncs, float64(r.Proposals)/max(1, float64(r.Fsyncs)))
}

func benchRaft(ctx context.Context, o benchRaftOpts) (benchRaftResult, error) {
	dir := o.dataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "flotilla-bench-")
		if err != nil {
			return benchRaftResult{}, err
		}
		defer os.RemoveAll(d)
		dir = d
	} else if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return benchRaftResult{}, fmt.Errorf("--data-dir %s is not empty; the benchmark needs a fresh directory", dir)
	}
	c, err := node.StartLocalCluster(o.nodes, dir, func(cfg *node.Config) {
		cfg.NoSync = o.noSync
		cfg.TickInterval = 50 * time.Millisecond
	})
	if err != nil {
		return benchRaftResult{}, err
	}
	defer c.Stop()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	leader, err := c.Leader(wctx)
	if err != nil {
		return benchRaftResult{}, err
	}
	value := make([]byte, o.valueSize)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	var firstErr error
	run := func(d time.Duration, record bool) ([]time.Duration, int) {
		var mu sync.Mutex
		var lats []time.Duration
		errs := 0
		deadline := time.Now().Add(d)
		var wg sync.WaitGroup
		for range o.clients {
			wg.Go(func() {
				var mine []time.Duration
				bad := 0
				var last error
				for time.Now().Before(deadline) {
					start := time.Now()
					pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					_, err := leader.Propose(pctx, value)
					cancel()
					if err != nil {
						bad++
						last = err
						if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, node.ErrStopped) {
							break // leadership moved: this run measures one leader
						}
						continue
					}
					mine = append(mine, time.Since(start))
				}
				mu.Lock()
				defer mu.Unlock()
				if last != nil && firstErr == nil {
					firstErr = last
				}
				if record {
					lats = append(lats, mine...)
					errs += bad
				}
			})
		}
		wg.Wait()
		return lats, errs
	}
	if o.warmup > 0 {
		run(o.warmup, false)
	}
	before := leader.Metrics().Snapshot()
	start := time.Now()
	lats, errs := run(o.duration, true)
	elapsed := time.Since(start)
	after := leader.Metrics().Snapshot()
	slices.Sort(lats)
	pct := func(p float64) float64 {
		if len(lats) == 0 {
			return 0
		}
		return float64(lats[min(len(lats)-1, int(p*float64(len(lats))))].Microseconds())
	}
	res := benchRaftResult{
		Command: fmt.Sprintf("flotilla bench raft --nodes %d --clients %d --duration %v --value-size %d%s",
			o.nodes, o.clients, o.duration, o.valueSize, map[bool]string{true: " --no-sync"}[o.noSync]),
		Nodes: o.nodes, Clients: o.clients, ValueSize: o.valueSize, Fsync: !o.noSync,
		Seconds: elapsed.Seconds(), Proposals: len(lats), Errors: errs,
		PerSecond: float64(len(lats)) / elapsed.Seconds(),
		P50Micros: pct(0.50), P90Micros: pct(0.90), P99Micros: pct(0.99), P999Micros: pct(0.999), MaxMicros: pct(1),
		Fsyncs:       after.WALSync.Count - before.WALSync.Count,
		LeaderChange: after.LeaderChanges - before.LeaderChanges,
	}
	if res.Errors > 0 {
		res.FirstError = firstErr.Error()
	}
	if len(lats) == 0 && firstErr != nil {
		return res, fmt.Errorf("no proposal succeeded: %w", firstErr)
	}
	return res, nil
}
