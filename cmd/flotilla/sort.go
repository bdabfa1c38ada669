package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/flotilla-dev/flotilla/dsort"
	"github.com/spf13/cobra"
)

func newSortCmd() *cobra.Command {
	return newGroup("sort", "Sort 100-byte records on one machine or across many (dsort)",
		`  flotilla sort gen --seed 1 in.dat 1GB
  flotilla sort local in.dat out.dat
  flotilla sort validate --input in.dat out.dat
  flotilla sort run 0 in.0 out.0 cluster.yaml
  flotilla sort cluster --nodes 4 in.dat outdir`,
		newSortGenCmd(), newSortValidateCmd(), newSortLocalCmd(), newSortRunCmd(), newSortClusterCmd())
}

func newSortGenCmd() *cobra.Command {
	var o dsort.GenOptions
	cmd := &cobra.Command{
		Use:   "gen [--seed S] [--ascii] [--skew] [--start N] FILE SIZE",
		Short: "Generate records in gensort's layout",
		Long: `gen writes SIZE records in gensort's layout to FILE (atomically): binary
records with random 10-byte keys, or with --ascii printable records ending in
"\r\n" so that line tools (LC_ALL=C sort) order them by key.

SIZE is a record count (as gensort takes: 10000000) or a byte size with a
suffix, rounded down to whole records: B, kB, MB, GB, TB (powers of 1000) or
KiB, MiB, GiB, TiB (powers of 1024). Record i depends only on the seed, the
flags and --start + i, so parts generated with --start concatenate to the
file generated in one go.`,
		Example: `  flotilla sort gen in.dat 1000000
  flotilla sort gen --ascii --seed 7 in.txt 1GB
  flotilla sort gen --start 500000 part2.dat 500000`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := dsort.ParseSize(args[1])
			if err != nil {
				return usageError{err}
			}
			sum, err := genFile(args[0], n, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %v\n", args[0], sum)
			return nil
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&o.Seed, "seed", 0, "seed of the keys and fillers")
	f.BoolVar(&o.ASCII, "ascii", false, "printable records ending in \\r\\n")
	f.BoolVar(&o.Skew, "skew", false, "skewed keys (about 71% in the lowest quarter of the key space)")
	f.Uint64Var(&o.Start, "start", 0, "number of the first record")
	return cmd
}

func genFile(path string, n uint64, o dsort.GenOptions) (dsort.Sum, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return dsort.Sum{}, err
	}
	defer os.Remove(f.Name()) // no-op after the rename
	sum, err := dsort.Generate(f, n, o)
	if err == nil {
		err = f.Chmod(0o644) // CreateTemp makes it 0600
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	return sum, err
}

func newSortValidateCmd() *cobra.Command {
	var inputs []string
	cmd := &cobra.Command{
		Use:   "validate [--input IN]... FILE...",
		Short: "Check that files are sorted in sequence and hold the input's records",
		Long: `validate reads FILE... in sequence, as if concatenated, like valsort: it
checks the key order within and across the files, counts records and
duplicate keys, and prints the checksum (the sum of every record's CRC-32C,
independent of order). With --input it also sums the inputs and fails unless
the outputs hold exactly the same records, so a lost or duplicated record is
caught. Exit status 1 when a check fails.`,
		Example: `  flotilla sort validate out.dat
  flotilla sort validate --input in.0 --input in.1 out.0 out.1`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("%s needs at least one FILE (see --help)", cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := dsort.Validate(args...)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%v\nduplicate keys %d\n", rep.Sum, rep.Duplicates)
			var bad []string
			if rep.Sorted() {
				fmt.Fprintln(out, "order ok")
			} else {
				fmt.Fprintf(out, "order BROKEN: %d records out of order, first at %s\n", rep.Unordered, rep.FirstUnordered)
				bad = append(bad, "not sorted")
			}
			if len(inputs) > 0 {
				in, err := dsort.Validate(inputs...)
				if err != nil {
					return err
				}
				if in.Sum == rep.Sum {
					fmt.Fprintf(out, "input %v: match\n", in.Sum)
				} else {
					fmt.Fprintf(out, "input %v: MISMATCH\n", in.Sum)
					bad = append(bad, "records differ from the input's")
				}
			}
			if len(bad) > 0 {
				return exitError{code: 1, msg: fmt.Sprintf("validate: %v", bad)}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&inputs, "input", nil, "an input file whose records the outputs must hold (repeatable)")
	return cmd
}

// sortFlags are the flags shared by local, run and cluster.
type sortFlags struct {
	mem     string
	tempDir string
	workers int
	noSync  bool
}

func (s *sortFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&s.mem, "mem", "2GiB", "record bytes held in memory (per node) before sorted runs spill to disk")
	f.StringVar(&s.tempDir, "temp-dir", "", "directory for spilled runs (default: the output's)")
	f.IntVar(&s.workers, "workers", 0, "goroutines that sort and gather (default: all CPUs)")
	f.BoolVar(&s.noSync, "no-sync", false, "skip the fsync of the output (benchmarks on throwaway data)")
}

func (s *sortFlags) options() (dsort.Options, error) {
	mem, err := dsort.ParseBytes(s.mem)
	if err != nil {
		return dsort.Options{}, usageError{fmt.Errorf("--mem: %w", err)}
	}
	if mem < dsort.RecordSize {
		return dsort.Options{}, usageError{errors.New("--mem must hold at least one 100-byte record")}
	}
	return dsort.Options{Mem: mem, TempDir: s.tempDir, Workers: s.workers, NoSync: s.noSync}, nil
}

func newSortLocalCmd() *cobra.Command {
	var sf sortFlags
	cmd := &cobra.Command{
		Use:   "local INPUT OUTPUT",
		Short: "Sort a file in one process (the baseline)",
		Long: `local sorts INPUT's records into OUTPUT, written atomically (temp file,
fsync, rename). Input that fits in --mem is mapped and sorted in memory with a
radix sort of (key, index) pairs; larger input is sorted in runs of --mem
bytes spilled to --temp-dir and merged.`,
		Example: `  flotilla sort local in.dat out.dat
  flotilla sort local --mem 256MiB in.dat out.dat`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opt, err := sf.options()
			if err != nil {
				return err
			}
			st, err := dsort.SortFile(cmd.Context(), args[0], args[1], opt)
			if err != nil {
				return err
			}
			printSortStats(cmd, args[1], st)
			return nil
		},
	}
	sf.add(cmd)
	return cmd
}

func printSortStats(cmd *cobra.Command, out string, st dsort.Stats) {
	mb := float64(st.Sum.Records*dsort.RecordSize) / 1e6
	fmt.Fprintf(cmd.OutOrStdout(), "%s: %v, %d runs spilled, %.3fs, %.1f MB/s\n",
		out, st.Sum, st.Runs, st.Duration.Seconds(), mb/max(st.Duration.Seconds(), 1e-9))
}

// progressFlags are the flags of the commands that run nodes.
type progressFlags struct {
	every   time.Duration
	dial    time.Duration
	idle    time.Duration
	verbose bool
}

func (p *progressFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.DurationVar(&p.every, "progress", 2*time.Second, "print a progress line to stderr this often (0: never)")
	f.DurationVar(&p.dial, "dial-timeout", 30*time.Second, "how long to keep retrying peers that are not up yet")
	f.DurationVar(&p.idle, "idle-timeout", 2*time.Minute, "fail when a peer's stream makes no progress for this long (a hung peer)")
	f.BoolVar(&p.verbose, "verbose", false, "log connection events to stderr")
}

func (p *progressFlags) apply(cmd *cobra.Command, o *dsort.NodeOptions) {
	if p.every > 0 {
		o.Progress, o.ProgressEvery = cmd.ErrOrStderr(), p.every
	}
	o.DialTimeout, o.IdleTimeout = p.dial, p.idle
	if p.verbose {
		o.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
}

func newSortRunCmd() *cobra.Command {
	var (
		sf     sortFlags
		pf     progressFlags
		sample bool
	)
	cmd := &cobra.Command{
		Use:   "run ID INPUT OUTPUT CONFIG",
		Short: "Run one node of a distributed sort",
		Long: `run is node ID of the cluster described in CONFIG, peer to peer: every node
is both server and client, with no coordinator. It reads INPUT, sends each
record to the node whose key range holds it, receives its own range from every
peer and writes it sorted to OUTPUT (atomically). Concatenating the outputs in
server order gives one sorted file with exactly the inputs' records.

CONFIG is YAML, the classic netsort layout plus optional fields:

  servers:
    - serverId: 0
      host: 127.0.0.1
      port: 9000
    - serverId: 1
      host: 127.0.0.1
      port: 9001
  partition: bits     # or sample: ranges from a sample of every node's keys
  sampleSize: 10000   # keys per node with partition: sample

With 2^N servers and partition bits, the N most significant key bits pick the
node; other counts get equal-width key ranges. Nodes may start in any order
within --dial-timeout; nodes with different configs refuse each other. See
docs/dsort.md for the wire protocol.`,
		Example: `  flotilla sort run 0 in.0 out.0 cluster.yaml   # on the first machine
  flotilla sort run 1 in.1 out.1 cluster.yaml   # on the second
  flotilla sort run --sample 1 in.1 out.1 cluster.yaml`,
		Args: exactArgs(4),
		RunE: func(cmd *cobra.Command, args []string) error {
			var id int
			if _, err := fmt.Sscan(args[0], &id); err != nil {
				return usageError{fmt.Errorf("ID %q: want a server ID from the config", args[0])}
			}
			cfg, err := dsort.LoadConfig(args[3])
			if err != nil {
				return err
			}
			if sample {
				cfg.Partition = dsort.PartitionSample
			}
			opt, err := sf.options()
			if err != nil {
				return err
			}
			no := dsort.NodeOptions{Options: opt}
			pf.apply(cmd, &no)
			st, err := dsort.Run(cmd.Context(), cfg, id, dsort.Input{Path: args[1], Length: -1}, args[2], no)
			if err != nil {
				return err
			}
			printSortStats(cmd, args[2], st.Stats)
			return nil
		},
	}
	sf.add(cmd)
	pf.add(cmd)
	cmd.Flags().BoolVar(&sample, "sample", false, "range boundaries from sampled keys (as partition: sample in the config; every node must agree)")
	return cmd
}

func newSortClusterCmd() *cobra.Command {
	var (
		sf     sortFlags
		pf     progressFlags
		nodes  int
		sample bool
	)
	cmd := &cobra.Command{
		Use:   "cluster --nodes K INPUT OUTDIR",
		Short: "Run K nodes of a distributed sort in this process, over loopback TCP",
		Long: `cluster splits INPUT into K near-equal record ranges and runs K nodes in this
process, each reading its range and talking to the others over loopback TCP
exactly as separate 'flotilla sort run' processes would. Node i writes
OUTDIR/part-0000i; the parts in order form the sorted input. --mem applies
to each node.`,
		Example: `  flotilla sort cluster --nodes 4 in.dat out/
  flotilla sort validate --input in.dat out/part-*`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if nodes < 1 {
				return usageError{fmt.Errorf("--nodes must be at least 1, got %d", nodes)}
			}
			opt, err := sf.options()
			if err != nil {
				return err
			}
			no := dsort.NodeOptions{Options: opt}
			pf.apply(cmd, &no)
			if err := os.MkdirAll(args[1], 0o755); err != nil {
				return err
			}
			part := dsort.PartitionBits
			if sample {
				part = dsort.PartitionSample
			}
			start := time.Now()
			stats, outs, err := dsort.Cluster(cmd.Context(), nodes, args[0], args[1], part, no)
			if err != nil {
				return err
			}
			var total dsort.Stats
			for i, st := range stats {
				printSortStats(cmd, outs[i], st.Stats)
				total.Sum.Merge(st.Sum)
				total.Runs += st.Runs
			}
			total.Duration = time.Since(start)
			printSortStats(cmd, "total", total)
			return nil
		},
	}
	sf.add(cmd)
	pf.add(cmd)
	cmd.Flags().IntVar(&nodes, "nodes", 4, "number of nodes")
	cmd.Flags().BoolVar(&sample, "sample", false, "range boundaries from sampled keys")
	return cmd
}
