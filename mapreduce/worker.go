package mapreduce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/proto/mrpb"
)

// WorkerConfig configures a worker.
type WorkerConfig struct {
	// Coordinator is the coordinator's gRPC address. Required.
	Coordinator string
	// Listener, if set, is where the worker serves its intermediate files;
	// otherwise it listens on Listen (default "127.0.0.1:0").
	Listener net.Listener
	Listen   string
	// Advertise is the address reducers dial; default the listener's.
	Advertise string
	// Dir holds intermediate files (in a sub-directory per job, removed
	// when the worker returns); default a new temp directory.
	Dir string
	// AllowExec lets the worker run exec jobs' commands.
	AllowExec bool
	// Apps are the apps the worker can run; default Builtin().
	Apps map[string]AppFactory
	// JobID, if set, is the only job the worker accepts.
	JobID string
	// CoordinatorTimeout is how long the coordinator may be unreachable
	// before the worker gives up; default 10s.
	CoordinatorTimeout time.Duration
	// FetchTimeout is how long a reducer waits for data from a map
	// output's worker before it reports the output lost; default 10s.
	FetchTimeout time.Duration
	// MaxMapOutput bounds the bytes one map task may emit (they are
	// sorted in memory); default 1 GiB.
	MaxMapOutput int64
	// Logger receives events; default slog.Default().
	Logger *slog.Logger
}

// worker is one RunWorker call.
type worker struct {
	mrpb.UnimplementedWorkerServer
	cfg   WorkerConfig
	coord mrpb.CoordinatorClient
	addr  string
	dir   string // the job's directory
	jobID string
	job   Job
	app   App
	hb    time.Duration
	peers *peers

	mu       sync.Mutex
	id       uint64
	attempts map[uint64]context.CancelFunc // running attempts
	lastOK   time.Time                     // last answer from the coordinator
}

// RunWorker registers with the coordinator and runs its tasks, one at a
// time, until the job is over (it returns nil), ctx is cancelled, or the
// coordinator is unreachable for CoordinatorTimeout. Cancelling ctx is how
// tests crash a worker: it stops at once, reporting nothing.
func RunWorker(ctx context.Context, cfg WorkerConfig) error {
	if cfg.Apps == nil {
		cfg.Apps = Builtin()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CoordinatorTimeout <= 0 {
		cfg.CoordinatorTimeout = 10 * time.Second
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = 10 * time.Second
	}
	if cfg.MaxMapOutput <= 0 {
		cfg.MaxMapOutput = 1 << 30
	}
	lis := cfg.Listener
	if lis == nil {
		addr := cfg.Listen
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		var err error
		if lis, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("mapreduce: worker: %w", err)
		}
	}
	defer lis.Close()
	root := cfg.Dir
	if root == "" {
		d, err := os.MkdirTemp("", "flotilla-mr-worker-")
		if err != nil {
			return fmt.Errorf("mapreduce: worker: %w", err)
		}
		defer os.RemoveAll(d)
		root = d
	}
	cc, err := grpc.NewClient(cfg.Coordinator, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("mapreduce: worker: coordinator %q: %w", cfg.Coordinator, err)
	}
	defer cc.Close()
	w := &worker{cfg: cfg, coord: mrpb.NewCoordinatorClient(cc), addr: cfg.Advertise, peers: newPeers(),
		attempts: map[uint64]context.CancelFunc{}, jobID: cfg.JobID}
	defer w.peers.close()
	if w.addr == "" {
		w.addr = lis.Addr().String()
	}
	if err := w.register(ctx); err != nil {
		return err
	}
	w.dir = filepath.Join(root, "job-"+w.jobID)
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return fmt.Errorf("mapreduce: worker: %w", err)
	}
	defer os.RemoveAll(w.dir)
	if w.app, err = w.newApp(); err != nil {
		return err
	}

	srv := grpc.NewServer()
	mrpb.RegisterWorkerServer(srv, w)
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(lis) }()
	defer func() { srv.Stop(); <-served }()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.heartbeats(ctx, cancel) }()
	err = w.loop(ctx)
	cause := context.Cause(ctx)
	cancel(nil)
	wg.Wait()
	switch {
	case errors.Is(err, errJobOver), errors.Is(cause, errJobOver):
		return nil
	case cause != nil:
		return cause
	}
	return err
}

var errJobOver = errors.New("mapreduce: the job is over")

func (w *worker) newApp() (App, error) {
	if w.job.App == "exec" && !w.cfg.AllowExec {
		return nil, ErrExecNotAllowed
	}
	return newApp(w.cfg.Apps, w.job)
}

// call runs an RPC, retrying while the coordinator is unreachable for up
// to CoordinatorTimeout.
func (w *worker) call(ctx context.Context, f func(ctx context.Context) error) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := f(cctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			w.mu.Lock()
			w.lastOK = time.Now()
			w.mu.Unlock()
			return err
		}
		if c := status.Code(err); c != codes.Unavailable && c != codes.DeadlineExceeded {
			return err
		}
		w.mu.Lock()
		since := time.Since(w.lastOK)
		w.mu.Unlock()
		if since > w.cfg.CoordinatorTimeout {
			return fmt.Errorf("mapreduce: worker: coordinator %s unreachable for %v: %w", w.cfg.Coordinator, since.Round(time.Millisecond), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// register (re-)registers with the coordinator.
func (w *worker) register(ctx context.Context) error {
	w.mu.Lock()
	w.lastOK = time.Now()
	w.mu.Unlock()
	var resp *mrpb.RegisterResponse
	err := w.call(ctx, func(ctx context.Context) (err error) {
		resp, err = w.coord.Register(ctx, &mrpb.RegisterRequest{Addr: w.addr, JobId: w.jobID})
		return err
	})
	if err != nil {
		return fmt.Errorf("mapreduce: worker: registering with %s: %w", w.cfg.Coordinator, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.id, w.jobID, w.job = resp.GetWorkerId(), resp.GetJobId(), jobFromProto(resp.GetSpec())
	w.hb = max(time.Duration(resp.GetHeartbeatMs())*time.Millisecond, 10*time.Millisecond)
	return nil
}

func (w *worker) workerID() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.id
}

// heartbeats sends heartbeats until ctx ends, cancelling attempts the
// coordinator gave up on, and the worker (through stop) when the job is
// over or the coordinator is gone.
func (w *worker) heartbeats(ctx context.Context, stop context.CancelCauseFunc) {
	t := time.NewTicker(w.hb)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var resp *mrpb.HeartbeatResponse
		err := w.call(ctx, func(ctx context.Context) (err error) {
			resp, err = w.coord.Heartbeat(ctx, &mrpb.HeartbeatRequest{JobId: w.jobID, WorkerId: w.workerID()})
			return err
		})
		switch {
		case ctx.Err() != nil:
			return
		case status.Code(err) == codes.NotFound:
			w.cancelAll() // declared dead: the loop registers again
		case err != nil:
			stop(err)
			return
		case resp.GetExit():
			stop(errJobOver)
			return
		}
		w.mu.Lock()
		for _, a := range resp.GetCancel() {
			if c := w.attempts[a]; c != nil {
				w.cfg.Logger.Debug("mapreduce: attempt cancelled by the coordinator", "attempt", a)
				c()
			}
		}
		w.mu.Unlock()
	}
}

func (w *worker) cancelAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.attempts {
		c()
	}
}

// loop asks for tasks and runs them.
func (w *worker) loop(ctx context.Context) error {
	for {
		var resp *mrpb.GetTaskResponse
		err := w.call(ctx, func(ctx context.Context) (err error) {
			resp, err = w.coord.GetTask(ctx, &mrpb.GetTaskRequest{JobId: w.jobID, WorkerId: w.workerID()})
			return err
		})
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case status.Code(err) == codes.NotFound:
			w.cfg.Logger.Warn("mapreduce: worker was declared dead; registering again", "worker", w.workerID())
			if err := w.register(ctx); err != nil {
				return err
			}
			continue
		case err != nil:
			return fmt.Errorf("mapreduce: worker: %w", err)
		}
		switch resp.GetAction() {
		case mrpb.Action_ACTION_EXIT:
			return errJobOver
		case mrpb.Action_ACTION_RUN:
			w.run(ctx, resp.GetTask())
		default:
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(max(resp.GetWaitMs(), 10)) * time.Millisecond):
			}
		}
	}
}

// fetchError is a reduce attempt's failure to fetch a map output.
type fetchError struct {
	out *mrpb.MapOutput
	err error
}

func (e *fetchError) Error() string {
	return fmt.Sprintf("fetching map task %d's output from %s: %v", e.out.GetMapTask(), e.out.GetAddr(), e.err)
}

// run runs one attempt and reports it, unless it was cancelled.
func (w *worker) run(ctx context.Context, t *mrpb.Task) {
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	w.mu.Lock()
	w.attempts[t.GetAttempt()] = cancel
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.attempts, t.GetAttempt())
		w.mu.Unlock()
	}()
	ti := TaskInfo{Index: int(t.GetIndex()), Attempt: t.GetAttempt(), Try: int(t.GetTry()), Reduces: w.job.Reduces}
	var err error
	if t.GetKind() == mrpb.TaskKind_TASK_KIND_MAP {
		ti.Kind = "map"
		err = w.runMap(withTask(actx, ti), t)
	} else {
		ti.Kind = "reduce"
		err = w.runReduce(withTask(actx, ti), t)
	}
	if actx.Err() != nil {
		return // cancelled: lost the race, given up on, or the worker stops
	}
	req := &mrpb.ReportTaskRequest{JobId: w.jobID, WorkerId: w.workerID(), Kind: t.GetKind(), Index: t.GetIndex(), Attempt: t.GetAttempt()}
	var fe *fetchError
	switch {
	case errors.Is(err, errCommitted):
		return
	case err == nil:
		req.Outcome = mrpb.Outcome_OUTCOME_DONE
	case errors.As(err, &fe):
		req.Outcome, req.Error = mrpb.Outcome_OUTCOME_FETCH_FAILED, err.Error()
		req.LostMapTask, req.LostMapAttempt = fe.out.GetMapTask(), fe.out.GetAttempt()
	default:
		req.Outcome, req.Error = mrpb.Outcome_OUTCOME_FAILED, err.Error()
	}
	if err != nil {
		w.cfg.Logger.Warn("mapreduce: attempt failed", "kind", ti.Kind, "task", ti.Index, "attempt", ti.Attempt, "err", err)
	}
	err = w.call(ctx, func(ctx context.Context) error {
		_, err := w.coord.ReportTask(ctx, req)
		return err
	})
	if err != nil && ctx.Err() == nil {
		w.cfg.Logger.Warn("mapreduce: report failed", "attempt", ti.Attempt, "err", err)
	}
}

// errCommitted: a reduce attempt already reported itself by CommitOutput.
var errCommitted = errors.New("mapreduce: output committed")

// Fetch serves one partition of a map attempt's output.
func (w *worker) Fetch(req *mrpb.FetchRequest, stream grpc.ServerStreamingServer[mrpb.Chunk]) error {
	if req.GetJobId() != w.jobID {
		return status.Errorf(codes.FailedPrecondition, "mapreduce: this worker runs job %s, not %q", w.jobID, req.GetJobId())
	}
	f, err := os.Open(filepath.Join(w.dir, mapDir(int(req.GetMapTask()), req.GetAttempt()), partFile(int(req.GetPartition()))))
	if err != nil {
		return status.Errorf(codes.NotFound, "mapreduce: no output of map task %d attempt %d partition %d", req.GetMapTask(), req.GetAttempt(), req.GetPartition())
	}
	defer f.Close()
	return sendStream(stream, f, -1)
}

func mapDir(task int, att uint64) string { return fmt.Sprintf("m-%d-%d", task, att) }
func partFile(r int) string              { return fmt.Sprintf("p-%d", r) }
