package nemesis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Fault is a kind of fault the schedule may inject.
type Fault string

// The faults. Each is injected on its own (one at a time) and undone
// before the next, so that a majority stays up most of the time and the
// run makes progress; targets are chosen at random, the leader half of
// the time.
const (
	// FaultKill sends a member SIGKILL and restarts it on its data
	// directory when the fault ends: what was not fsynced is lost.
	FaultKill Fault = "kill"
	// FaultPause stops a member with SIGSTOP and continues it with SIGCONT.
	FaultPause Fault = "pause"
	// FaultPartition isolates a member: its transport drops every message
	// to and from the others (a symmetric partition).
	FaultPartition Fault = "partition"
	// FaultOneWay cuts one direction between two members: messages from a
	// to b are dropped (at a's sending side or b's receiving side), those
	// from b to a still arrive.
	FaultOneWay Fault = "oneway"
	// FaultSlowFsync makes a member's every WAL fsync wait 50 to 300 ms
	// (a slow disk), through its fault endpoint.
	FaultSlowFsync Fault = "slow-fsync"
)

// AllFaults lists every fault, the default of Options.Faults.
var AllFaults = []Fault{FaultKill, FaultPause, FaultPartition, FaultOneWay, FaultSlowFsync}

// ParseFaults parses a comma-separated list of fault names; an empty list
// gives an empty, non-nil slice (no faults).
func ParseFaults(s string) ([]Fault, error) {
	fs := []Fault{}
	for name := range strings.SplitSeq(s, ",") {
		f := Fault(strings.TrimSpace(name))
		if f == "" {
			continue
		}
		if !slices.Contains(AllFaults, f) {
			return nil, fmt.Errorf("nemesis: unknown fault %q (want some of kill, pause, partition, oneway, slow-fsync)", f)
		}
		if !slices.Contains(fs, f) {
			fs = append(fs, f)
		}
	}
	return fs, nil
}

// Options configures a run. Zero values take the defaults given.
type Options struct {
	// Binary is the flotilla binary that runs the members. Required.
	Binary string
	// Duration is how long the clients run under faults; the heal, the
	// convergence wait and the checks come after. Default 30 s.
	Duration time.Duration
	// Faults are the kinds of faults injected; nil means AllFaults, and an
	// empty non-nil slice injects none (a control run).
	Faults []Fault
	// Seed fixes the schedule: which faults, on which members, after which
	// intervals, and the clients' choice of operations. The interleaving
	// of real processes is not reproducible; the seed makes a run similar,
	// not identical.
	Seed int64
	// Nodes is the number of members; default 3.
	Nodes int
	// Clients is the number of concurrent clients, each running one
	// operation at a time; default 4.
	Clients int
	// Tick is the members' Raft tick; default 20 ms (elections after
	// 200-400 ms).
	Tick time.Duration
	// FaultMin and FaultMax bound how long a fault lasts, and QuietMin and
	// QuietMax the pause between faults. Defaults 1 s–3 s and 0.5 s–1.5 s.
	FaultMin, FaultMax, QuietMin, QuietMax time.Duration
	// KeyEpoch is how long the clients use the same keys before they move
	// to fresh ones (r0.0 … a3.0, then r0.1 …). It keeps every key's
	// history short: porcupine's cost grows with the square of a key's
	// history, and an append key's value with its length. Default 5 s.
	KeyEpoch time.Duration
	// OpTimeout bounds one client operation, retries included; one that
	// takes longer has an unknown outcome. Default 3 s.
	OpTimeout time.Duration
	// NoSync starts the members with --no-sync. Unsafe, but kill -9 does
	// not lose the page cache, so only a machine crash (which the nemesis
	// does not cause) loses what was not fsynced.
	NoSync bool
	// StaleReads makes the clients read with kvclient.Serializable from a
	// random member: not linearizable (a lagging or cut-off member answers
	// with an old value). A negative control that shows the checker fails
	// a real cluster's history.
	StaleReads bool
	// ReportDir receives summary.txt, timeline.html and the cluster's
	// directory (config, members' logs; their data only after a
	// violation). Required.
	ReportDir string
	// CheckTimeout bounds the linearizability check; default 2 min.
	CheckTimeout time.Duration
	// Progress, if set, receives a line per fault as the run goes.
	Progress io.Writer
}

func (o Options) withDefaults() (Options, error) {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Duration, 30*time.Second)
	def(&o.Tick, 20*time.Millisecond)
	def(&o.FaultMin, time.Second)
	def(&o.FaultMax, 3*time.Second)
	def(&o.QuietMin, 500*time.Millisecond)
	def(&o.QuietMax, 1500*time.Millisecond)
	def(&o.OpTimeout, 3*time.Second)
	def(&o.KeyEpoch, 5*time.Second)
	def(&o.CheckTimeout, 2*time.Minute)
	if o.Nodes <= 0 {
		o.Nodes = 3
	}
	if o.Clients <= 0 {
		o.Clients = 4
	}
	if o.Faults == nil {
		o.Faults = AllFaults
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	switch {
	case o.Binary == "":
		return o, errors.New("nemesis: Options.Binary is empty; give the path of the flotilla binary")
	case o.ReportDir == "":
		return o, errors.New("nemesis: Options.ReportDir is empty; give a directory for the report")
	case o.FaultMax < o.FaultMin || o.QuietMax < o.QuietMin:
		return o, errors.New("nemesis: a fault's or a quiet period's maximum is below its minimum")
	case o.Nodes < 3 && len(o.Faults) > 0:
		return o, fmt.Errorf("nemesis: %d members cannot survive a fault; use at least 3", o.Nodes)
	}
	return o, nil
}

// ErrViolation is wrapped by Result.Err when a check failed.
var ErrViolation = errors.New("nemesis: violation")

// Result is what a run found.
type Result struct {
	Options Options
	// Start and End bound the run, the checks included.
	Start, End time.Time
	// Events is the client history, final reads included.
	Events []Event
	// Faults lists the faults injected, in order.
	Faults []FaultEvent
	// Checks lists each check and its outcome.
	Checks []Check
	// SummaryPath and TimelinePath are the report's files.
	SummaryPath, TimelinePath string

	info porcupine.LinearizationInfo // for the timeline
}

// FaultEvent is one fault: injected at Start and undone at End
// (nanoseconds since the run started, like Event times).
type FaultEvent struct {
	Kind        Fault
	Description string
	Start, End  int64
}

// Check is the outcome of one check.
type Check struct {
	Name   string
	OK     bool
	Detail string
}

// Err returns nil if every check passed, or an error wrapping ErrViolation
// that names the failed checks.
func (r *Result) Err() error {
	var failed []string
	for _, c := range r.Checks {
		if !c.OK {
			failed = append(failed, c.Name+": "+c.Detail)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s (report in %s)", ErrViolation, strings.Join(failed, "; "), r.Options.ReportDir)
}

// Run starts the cluster, runs the clients and the fault schedule for
// opts.Duration, heals everything, checks the run and writes the report.
// It returns an error if the run could not be carried out (a member does
// not start, the cluster does not converge after the heal); a completed
// run's violations are in Result.Err. Cancelling ctx stops the run early
// (the members are killed) with ctx's error.
func Run(ctx context.Context, opts Options) (*Result, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.Binary, err = filepath.Abs(opts.Binary); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.ReportDir, 0o755); err != nil {
		return nil, fmt.Errorf("nemesis: report directory: %w", err)
	}
	res := &Result{Options: opts, Start: time.Now()}
	c, err := startCluster(opts, filepath.Join(opts.ReportDir, "cluster"))
	if err != nil {
		return nil, err
	}
	defer c.stop()
	h := newHistory()
	if err := c.waitLeader(ctx, 20*time.Second); err != nil {
		return nil, err
	}
	runCtx, stopRun := context.WithTimeout(ctx, opts.Duration)
	defer stopRun()
	w := newWorkload(opts, h, c.endpoints())
	done := make(chan struct{})
	go func() { w.run(runCtx); close(done) }()
	s := newSchedule(opts, c, h)
	schedErr := s.run(runCtx)
	<-done
	w.close()
	res.Faults = s.events
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if schedErr != nil {
		return nil, schedErr
	}
	healCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	fmt.Fprintf(opts.Progress, "%6.1fs heal: resume, restart and reconnect every member\n", seconds(h.now()))
	if err := c.heal(healCtx); err != nil {
		return nil, err
	}
	fin, err := finish(healCtx, c, h)
	if err != nil {
		return nil, err
	}
	res.Events = h.events()
	res.Checks, res.info = check(res.Events, fin, opts.CheckTimeout)
	res.End = time.Now()
	if err := writeReport(res); err != nil {
		return res, err
	}
	if res.Err() == nil {
		for _, m := range c.members {
			os.RemoveAll(m.dataDir) // kept after a violation, for a post-mortem
		}
	}
	return res, nil
}

// waitLeader waits until some member names a leader.
func (c *cluster) waitLeader(ctx context.Context, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	err := poll(ctx, 50*time.Millisecond, func() error {
		if c.leader(ctx) == nil {
			return errors.New("no member names a leader")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("nemesis: the cluster did not elect a leader: %w (member logs in %s)", err, c.dir)
	}
	return nil
}

func seconds(ns int64) float64 { return float64(ns) / 1e9 }
