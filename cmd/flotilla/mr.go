package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/internal/admin"
	"github.com/flotilla-dev/flotilla/mapreduce"
	"github.com/flotilla-dev/flotilla/proto/mrpb"
)

func newMRCmd() *cobra.Command {
	return newGroup("mr", "Run MapReduce jobs on a coordinator and workers that may crash",
		`  flotilla mr run --app wc --reduces 4 --workers 3 --out counts books/*.txt
  flotilla mr run --app grep --pattern 'ERROR|FATAL' --out errors logs/*.log
  flotilla mr run --app exec --map ./map.py --reduce ./reduce.py --out out data/*
  flotilla mr coordinator --listen :7400 --app index --out index docs/*
  flotilla mr worker --coordinator host:7400 --listen :7401 --advertise host2:7401
  flotilla mr status --coordinator 127.0.0.1:7400`,
		newMRRunCmd(), newMRCoordinatorCmd(), newMRWorkerCmd(), newMRStatusCmd())
}

// mrJobOpts are the flags that describe a job and its coordinator.
type mrJobOpts struct {
	cfg           mapreduce.Config
	splitSize     string
	listen        string
	admin         string
	quiet         bool
	verbose       bool
	heartbeat     time.Duration
	workerTimeout time.Duration
}

func (o *mrJobOpts) flags(f *pflag.FlagSet, listen string) {
	j := &o.cfg.Job
	f.StringVar(&j.App, "app", "wc", "the app: wc, grep, index or exec")
	f.IntVarP(&j.Reduces, "reduces", "R", 4, "number of reduce partitions (output files)")
	f.StringVar(&j.GrepPattern, "pattern", "", "grep: the regular expression (RE2 syntax)")
	f.StringVar(&j.MapCommand, "map", "", "exec: the map command (sh -c), reading lines on stdin, writing key<TAB>value lines")
	f.StringVar(&j.ReduceCommand, "reduce", "", "exec: the reduce command, reading sorted key<TAB>value lines")
	f.StringVar(&j.CombineCommand, "combine", "", "exec: an optional combine command, run on each map task's sorted output")
	f.BoolVar(&j.NoCombine, "no-combine", false, "do not run the app's combiner")
	f.StringVarP(&o.cfg.OutDir, "out", "o", "mr-out", "output directory (created; must be empty)")
	f.StringVar(&o.splitSize, "split-size", "16MiB", "target size of a map task's input (B, KiB, MiB, GiB, kB, MB, GB)")
	f.StringVar(&o.listen, "listen", listen, "coordinator gRPC address")
	f.StringVar(&o.admin, "admin", "", "serve /metrics, /status and /debug/pprof on this HTTP address (off when empty)")
	f.DurationVar(&o.heartbeat, "heartbeat", 500*time.Millisecond, "how often workers send heartbeats")
	f.DurationVar(&o.workerTimeout, "worker-timeout", 5*time.Second, "silence after which a worker is declared dead and its tasks re-run")
	f.DurationVar(&o.cfg.BackupAfter, "backup-after", 2*time.Second, "least run time of a task before it may get a backup attempt near the end of a phase")
	f.BoolVar(&o.cfg.NoBackups, "no-backups", false, "never run backup attempts of straggling tasks")
	f.IntVar(&o.cfg.MaxFailures, "max-failures", 3, "failures of one task (app errors) that fail the job")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "do not show progress")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "log every task event")
}

// coordinator checks the job and creates the coordinator and its listener.
func (o *mrJobOpts) coordinator(cmd *cobra.Command, inputs []string) (*mapreduce.Coordinator, net.Listener, error) {
	size, err := parseBytes(o.splitSize)
	if err != nil {
		return nil, nil, usageError{fmt.Errorf("--split-size: %w", err)}
	}
	if o.heartbeat <= 0 || o.workerTimeout <= o.heartbeat {
		return nil, nil, usageError{errors.New("--heartbeat must be positive and --worker-timeout longer than it")}
	}
	o.cfg.Inputs, o.cfg.SplitSize = inputs, size
	o.cfg.Heartbeat, o.cfg.WorkerTimeout = o.heartbeat, o.workerTimeout
	o.cfg.Logger = mrLogger(cmd.ErrOrStderr(), o.verbose)
	c, err := mapreduce.NewCoordinator(o.cfg)
	if errors.Is(err, mapreduce.ErrUnknownApp) || errors.Is(err, mapreduce.ErrInvalidJob) && strings.Contains(err.Error(), "reduces") {
		return nil, nil, usageError{err}
	}
	if err != nil {
		return nil, nil, err
	}
	lis, err := net.Listen("tcp", o.listen)
	if err != nil {
		return nil, nil, fmt.Errorf("coordinator: %w", err)
	}
	return c, lis, nil
}

func mrLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

func newMRRunCmd() *cobra.Command {
	var o mrJobOpts
	var workers int
	cmd := &cobra.Command{
		Use:   "run [flags] INPUT...",
		Short: "Run a job on a coordinator and local worker processes",
		Long: `run starts a coordinator and --workers worker processes (flotilla mr worker)
on this machine, runs the job over the INPUT files and shows progress: map
and reduce tasks done and running, failed attempts, tasks re-run after a
lost worker, and backup attempts of stragglers.

The output directory gets one file per reduce partition (part-00000, ...)
with lines "key value", and _SUCCESS once every partition is in place. A
failed job leaves no partition behind. Kill a worker (kill -9) while it
runs: its tasks are re-run by the others, and run starts a new worker in
its place (up to 10 times per worker).`,
		Example: `  flotilla mr run --app wc --reduces 4 --workers 3 --out counts books/*.txt
  flotilla mr run --app grep --pattern '\bfoo\b' --out matches src/*.go
  flotilla mr run --app exec --map "tr -s ' ' '\n' | awk 'NF {print \$1 \"\t1\"}'" \
      --reduce "awk -F'\t' '{c[\$1]+=\$2} END {for (k in c) print k \"\t\" c[k]}'" --out counts *.txt`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("%s needs at least one input file (usage: %s)", cmd.CommandPath(), cmd.UseLine())}
			}
			if workers < 1 || workers > 256 {
				return usageError{fmt.Errorf("--workers must be 1 to 256, got %d", workers)}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, lis, err := o.coordinator(cmd, args)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			adminDone, err := o.serveAdmin(ctx, cmd.ErrOrStderr(), c)
			if err != nil {
				lis.Close()
				return err
			}
			defer adminDone()
			defer cancel()
			runErr := make(chan error, 1)
			go func() { runErr <- c.Run(ctx, lis) }()
			pool, err := startMRWorkers(ctx, cmd.ErrOrStderr(), workers, lis.Addr().String(), c.JobID(), o)
			if err != nil {
				cancel()
				<-runErr
				return err
			}
			err = waitJob(ctx, cmd.ErrOrStderr(), c, runErr, o.quiet)
			pool.stop()
			return reportJob(cmd.OutOrStdout(), c, err, o.cfg.OutDir)
		},
	}
	o.flags(cmd.Flags(), "127.0.0.1:0")
	cmd.Flags().IntVarP(&workers, "workers", "w", 3, "number of worker processes")
	return cmd
}

// serveAdmin serves the coordinator's admin endpoint on --admin until ctx
// ends; the returned function waits for it to stop.
func (o *mrJobOpts) serveAdmin(ctx context.Context, w io.Writer, c *mapreduce.Coordinator) (func(), error) {
	if o.admin == "" {
		return func() {}, nil
	}
	h, err := c.AdminHandler()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", o.admin)
	if err != nil {
		return nil, fmt.Errorf("--admin: %w", err)
	}
	fmt.Fprintf(w, "admin endpoint on http://%s/\n", ln.Addr())
	done := make(chan struct{})
	go func() { defer close(done); admin.Serve(ctx, ln, h) }()
	return func() { <-done }, nil
}

// waitJob shows progress until Run returns.
func waitJob(ctx context.Context, w io.Writer, c *mapreduce.Coordinator, runErr <-chan error, quiet bool) error {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	last := ""
	show := func() {
		if s := c.Progress().String(); !quiet && s != last {
			fmt.Fprintln(w, s)
			last = s
		}
	}
	for {
		select {
		case err := <-runErr:
			show()
			return err
		case <-t.C:
			show()
		}
	}
}

func reportJob(w io.Writer, c *mapreduce.Coordinator, err error, out string) error {
	if err != nil {
		return err
	}
	st := c.Progress()
	fmt.Fprintf(w, "job %s done in %v: %d map and %d reduce tasks (%d re-run, %d backups, %d failed attempts); output in %s\n",
		st.JobID, st.Elapsed.Round(time.Millisecond), st.Maps.Done, st.Reduces.Done, st.Rerun, st.Backups, st.Failed, out)
	return nil
}

// mrPool is the worker processes of flotilla mr run. A worker that dies
// before the job is over is replaced, up to maxRespawns times per worker
// slot, so that killing workers cannot stall the job.
type mrPool struct {
	ctx  context.Context
	log  io.Writer
	exe  string
	args func(slot int) []string
	dir  string // the workers' directories, removed by stop
	wg   sync.WaitGroup

	mu       sync.Mutex
	procs    []*exec.Cmd
	over     bool        // stop was called: no more workers start
	respawns map[int]int // per slot
}

// maxRespawns bounds how often one worker slot is refilled: workers that
// die at once (a broken setup) must not loop forever.
const maxRespawns = 10

func startMRWorkers(ctx context.Context, log io.Writer, n int, addr, jobID string, o mrJobOpts) (*mrPool, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the flotilla binary for the workers: %w", err)
	}
	// The workers' intermediate files live under one directory that stop
	// removes, even when a worker was killed before it could clean up.
	dir, err := os.MkdirTemp("", "flotilla-mr-run-")
	if err != nil {
		return nil, fmt.Errorf("a directory for the workers: %w", err)
	}
	p := &mrPool{ctx: ctx, log: log, exe: exe, dir: dir, respawns: map[int]int{}}
	p.args = func(slot int) []string {
		args := []string{"mr", "worker", "--coordinator", addr, "--job", jobID, "--dir", filepath.Join(dir, fmt.Sprintf("w%d", slot))}
		if o.cfg.Job.App == "exec" {
			args = append(args, "--allow-exec")
		}
		if o.verbose {
			args = append(args, "--verbose")
		}
		return args
	}
	for i := range n {
		if err := p.spawn(i); err != nil {
			p.stop()
			return nil, err
		}
	}
	return p, nil
}

// spawn starts the worker of slot and watches it.
func (p *mrPool) spawn(slot int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.over {
		return nil
	}
	cmd := exec.Command(p.exe, p.args(slot)...)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting worker %d: %w", slot, err)
	}
	p.procs = append(p.procs, cmd)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		err := cmd.Wait()
		p.mu.Lock()
		over := p.over || p.ctx.Err() != nil
		p.respawns[slot]++
		n := p.respawns[slot]
		p.mu.Unlock()
		if err == nil || over {
			return
		}
		if n > maxRespawns {
			fmt.Fprintf(p.log, "worker %d (pid %d) exited: %v; not restarted (it died %d times)\n", slot, cmd.Process.Pid, err, n)
			return
		}
		fmt.Fprintf(p.log, "worker %d (pid %d) exited: %v; starting another\n", slot, cmd.Process.Pid, err)
		if err := p.spawn(slot); err != nil {
			fmt.Fprintln(p.log, err)
		}
	}()
	return nil
}

// stop gives the workers a moment to exit on their own (they do when the
// job is over), then kills the rest.
func (p *mrPool) stop() {
	defer os.RemoveAll(p.dir)
	p.mu.Lock()
	p.over = true
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(2 * time.Second):
	}
	p.mu.Lock()
	for _, c := range p.procs {
		c.Process.Kill()
	}
	p.mu.Unlock()
	<-done
}

func newMRCoordinatorCmd() *cobra.Command {
	var o mrJobOpts
	cmd := &cobra.Command{
		Use:   "coordinator [flags] INPUT...",
		Short: "Run a job's coordinator and wait for workers to join",
		Long: `coordinator serves the job on --listen and waits for workers (flotilla mr
worker --coordinator ADDR, on any machine that can reach it). It reads the
INPUT files itself and streams the splits to map workers, so workers need
no shared filesystem; reducers fetch intermediate files from the workers
that hold them, and stream their output back to the coordinator, which
writes it to --out. It exits when the job is over (status 1 if it failed).`,
		Example: `  flotilla mr coordinator --listen :7400 --app wc --reduces 8 --out counts corpus/*
  flotilla mr coordinator --listen 127.0.0.1:7400 --app grep --pattern TODO --out todos *.go`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("%s needs at least one input file (usage: %s)", cmd.CommandPath(), cmd.UseLine())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, lis, err := o.coordinator(cmd, args)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "coordinator of job %s listening on %s\n", c.JobID(), lis.Addr())
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			adminDone, err := o.serveAdmin(ctx, cmd.ErrOrStderr(), c)
			if err != nil {
				lis.Close()
				return err
			}
			defer adminDone()
			defer cancel()
			runErr := make(chan error, 1)
			go func() { runErr <- c.Run(ctx, lis) }()
			return reportJob(cmd.OutOrStdout(), c, waitJob(ctx, cmd.ErrOrStderr(), c, runErr, o.quiet), o.cfg.OutDir)
		},
	}
	o.flags(cmd.Flags(), "127.0.0.1:7400")
	return cmd
}

func newMRWorkerCmd() *cobra.Command {
	var cfg mapreduce.WorkerConfig
	var verbose bool
	cmd := &cobra.Command{
		Use:   "worker --coordinator ADDR [flags]",
		Short: "Run tasks for a coordinator until its job is over",
		Long: `worker registers with the coordinator, runs map and reduce tasks one at a
time, and serves its intermediate files to reducers on --listen (reachable
by the other workers at --advertise). It exits with status 0 when the job
is over, and 1 if the coordinator stays unreachable. exec jobs run shell
commands that the coordinator names, so a worker runs them only with
--allow-exec.`,
		Example: `  flotilla mr worker --coordinator 127.0.0.1:7400
  flotilla mr worker --coordinator host1:7400 --listen :7401 --advertise host2:7401 --allow-exec`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Coordinator == "" {
				return usageError{errors.New("--coordinator is required")}
			}
			cfg.Logger = mrLogger(cmd.ErrOrStderr(), verbose)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return mapreduce.RunWorker(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&cfg.Coordinator, "coordinator", "c", "", "coordinator gRPC address (required)")
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:0", "address to serve intermediate files on")
	f.StringVar(&cfg.Advertise, "advertise", "", "address other workers dial (default: the listen address)")
	f.StringVar(&cfg.Dir, "dir", "", "directory for intermediate files (default: a temp directory)")
	f.BoolVar(&cfg.AllowExec, "allow-exec", false, "run exec jobs' shell commands")
	f.StringVar(&cfg.JobID, "job", "", "accept only this job ID")
	f.DurationVar(&cfg.CoordinatorTimeout, "coordinator-timeout", 10*time.Second, "give up after the coordinator is unreachable this long")
	f.BoolVarP(&verbose, "verbose", "v", false, "log every task event")
	return cmd
}

func newMRStatusCmd() *cobra.Command {
	var addr string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--coordinator ADDR] [--json]",
		Short: "Show a running job's progress",
		Long: `status asks a coordinator for its job's progress: the phase, tasks idle,
running and done per phase, failed attempts, tasks re-run after lost workers
or lost map outputs, backup attempts, and live workers.`,
		Example: "  flotilla mr status --coordinator 127.0.0.1:7400\n  flotilla mr status --json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return usageError{fmt.Errorf("--coordinator %q: %w", addr, err)}
			}
			defer cc.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			resp, err := mrpb.NewCoordinatorClient(cc).Status(ctx, &mrpb.StatusRequest{})
			if status.Code(err) == codes.Unavailable || status.Code(err) == codes.DeadlineExceeded {
				return fmt.Errorf("no coordinator answers at %s (is a job running there? pass its address with --coordinator): %w", addr, err)
			}
			if err != nil {
				return fmt.Errorf("coordinator %s: %w", addr, err)
			}
			st := mapreduce.StatusFromProto(resp)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "job %s (%s, %d reduces), %v elapsed\n%s\n", st.JobID, st.Job.App, st.Job.Reduces, st.Elapsed.Round(time.Millisecond), st)
			return nil
		},
	}
	cmd.Flags().StringVarP(&addr, "coordinator", "c", "127.0.0.1:7400", "coordinator gRPC address")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// parseBytes parses a byte size such as 65536, 64KiB, 16MiB or 1GB.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	num, mult := s, int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("size %q: want a positive byte count with an optional suffix (64KiB, 16MiB, 1GB)", s)
	}
	return n * mult, nil
}
