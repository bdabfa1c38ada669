package mapreduce

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/proto/mrpb"
)

// SuccessFile is written to the output directory, last, when every
// partition is in place: an output directory without it is incomplete.
const SuccessFile = "_SUCCESS"

// chunkSize is the size of streamed file chunks (well under gRPC's 4 MiB
// message limit).
const chunkSize = 256 << 10

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// PartitionFile returns the name of reduce partition r's output file.
func PartitionFile(r int) string { return fmt.Sprintf("part-%05d", r) }

// Config configures a Coordinator. Zero durations take the defaults.
type Config struct {
	// Job is the program to run. Required.
	Job Job
	// Inputs are the input files, read by the coordinator and streamed to
	// map workers. Required.
	Inputs []string
	// OutDir receives one file per reduce partition (PartitionFile) and
	// SuccessFile. It is created if missing and must be empty.
	OutDir string
	// SplitSize is the target size of a map task's input; default
	// DefaultSplitSize.
	SplitSize int64
	// Heartbeat is how often workers send heartbeats; default 500ms.
	Heartbeat time.Duration
	// WorkerTimeout is how long a silent worker lives before it is
	// declared dead and its tasks re-run; default 10 heartbeats.
	WorkerTimeout time.Duration
	// BackupAfter is the least time an attempt runs before it may get a
	// backup attempt near the end of its phase; default 2s. An attempt
	// also must have run BackupFactor (default 3) times the median time
	// of the phase's completed attempts, or, before any completed, ten
	// times BackupAfter.
	BackupAfter  time.Duration
	BackupFactor float64
	// NoBackups turns backup attempts off.
	NoBackups bool
	// MaxFailures is how many times a task may fail (the app returned an
	// error) before the job fails; default 3.
	MaxFailures int
	// Apps are the known apps; default Builtin(). The coordinator only
	// checks the job against them; workers run them.
	Apps map[string]AppFactory
	// Logger receives events; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.SplitSize <= 0 {
		c.SplitSize = DefaultSplitSize
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 500 * time.Millisecond
	}
	if c.WorkerTimeout <= 0 {
		c.WorkerTimeout = 10 * c.Heartbeat
	}
	if c.BackupAfter <= 0 {
		c.BackupAfter = 2 * time.Second
	}
	if c.BackupFactor <= 0 {
		c.BackupFactor = 3
	}
	if c.MaxFailures <= 0 {
		c.MaxFailures = 3
	}
	if c.Apps == nil {
		c.Apps = Builtin()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Coordinator runs one job: it hands out tasks, watches workers and
// writes the output. Its methods are safe for concurrent use.
type Coordinator struct {
	mrpb.UnimplementedCoordinatorServer
	cfg    Config
	jobID  string
	start  time.Time
	doneCh chan struct{} // closed when the job is over

	mu sync.Mutex
	s  *sched
}

// NewCoordinator checks the job, the inputs and the output directory and
// plans the map tasks. Errors wrap ErrInvalidJob or ErrUnknownApp.
func NewCoordinator(cfg Config) (*Coordinator, error) {
	cfg.setDefaults()
	if _, err := newApp(cfg.Apps, cfg.Job); err != nil {
		return nil, err
	}
	if len(cfg.Inputs) == 0 {
		return nil, fmt.Errorf("%w: no input files", ErrInvalidJob)
	}
	splits, err := planSplits(cfg.Inputs, cfg.SplitSize)
	if err != nil {
		return nil, err
	}
	if err := checkOutDir(cfg.OutDir); err != nil {
		return nil, err
	}
	var id [8]byte
	rand.Read(id[:])
	c := &Coordinator{cfg: cfg, jobID: hex.EncodeToString(id[:]), start: cfg.Now(), doneCh: make(chan struct{})}
	c.s = newSched(schedConfig{workerTimeout: cfg.WorkerTimeout, backupAfter: cfg.BackupAfter,
		backupFactor: cfg.BackupFactor, noBackups: cfg.NoBackups, maxFailures: cfg.MaxFailures}, splits, cfg.Job.Reduces)
	if len(splits) == 0 { // only empty inputs: nothing to map
		c.s.maps = nil
	}
	return c, nil
}

// checkOutDir creates dir if needed and checks that it is empty and
// writable.
func checkOutDir(dir string) error {
	if dir == "" {
		return fmt.Errorf("%w: no output directory", ErrInvalidJob)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("%w: output directory: %w", ErrInvalidJob, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("%w: output directory: %w", ErrInvalidJob, err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("%w: output directory %s is not empty (remove it or choose another)", ErrInvalidJob, dir)
	}
	f, err := os.CreateTemp(dir, ".probe*")
	if err != nil {
		return fmt.Errorf("%w: output directory %s is not writable: %w", ErrInvalidJob, dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// JobID returns the job's ID, which every worker request must carry.
func (c *Coordinator) JobID() string { return c.jobID }

// Done is closed when the job is over (see Progress for how it ended).
func (c *Coordinator) Done() <-chan struct{} { return c.doneCh }

// Run serves the coordinator on lis until the job is over and the workers
// were told (or ctx is cancelled), then stops the server. It returns nil
// if the job succeeded: every partition and SuccessFile are in OutDir.
// If the job failed, the partitions already written are removed.
func (c *Coordinator) Run(ctx context.Context, lis net.Listener) error {
	srv := grpc.NewServer()
	mrpb.RegisterCoordinatorServer(srv, c)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	defer func() {
		// Let answers in flight (the last "exit" to a worker) reach their
		// workers, but do not wait on a stuck stream.
		stopped := make(chan struct{})
		go func() { srv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(time.Second):
			srv.Stop()
			<-stopped
		}
		<-served
	}()

	err := c.watch(ctx)
	c.finish(err)
	if ctx.Err() == nil {
		err = c.linger(ctx)
	}
	return err
}

// watch ticks the scheduler until the job is over or ctx is cancelled.
func (c *Coordinator) watch(ctx context.Context) error {
	t := time.NewTicker(c.cfg.Heartbeat / 2)
	defer t.Stop()
	for {
		c.mu.Lock()
		c.s.tick(c.cfg.Now())
		done, err := c.s.finished()
		c.mu.Unlock()
		if done {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("mapreduce: job stopped: %w", context.Cause(ctx))
		case <-c.doneCh:
		case <-t.C:
		}
	}
}

// finish writes SuccessFile, or removes the partial output on failure.
func (c *Coordinator) finish(jobErr error) {
	c.mu.Lock()
	if c.s.err == nil && jobErr != nil {
		c.s.err = jobErr
	}
	select {
	case <-c.doneCh:
	default:
		close(c.doneCh)
	}
	c.mu.Unlock()
	if jobErr == nil {
		if err := writeFileAtomic(c.cfg.OutDir, SuccessFile, nil); err != nil {
			c.mu.Lock()
			c.s.err = fmt.Errorf("mapreduce: writing %s: %w", SuccessFile, err)
			c.mu.Unlock()
		}
		return
	}
	for r := range c.cfg.Job.Reduces {
		os.Remove(filepath.Join(c.cfg.OutDir, PartitionFile(r)))
	}
	c.cfg.Logger.Info("mapreduce: job failed", "job", c.jobID, "err", jobErr)
}

// linger keeps serving until every live worker was told that the job is
// over, or a worker timeout passed, so that workers exit cleanly; it
// returns the job's error.
func (c *Coordinator) linger(ctx context.Context) error {
	deadline := time.Now().Add(c.cfg.WorkerTimeout)
	t := time.NewTicker(c.cfg.Heartbeat / 4)
	defer t.Stop()
	for time.Now().Before(deadline) {
		c.mu.Lock()
		all := c.s.allExited()
		err := c.s.err
		c.mu.Unlock()
		if all {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-t.C:
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s.err
}

// check refuses requests for another job.
func (c *Coordinator) check(jobID string) error {
	if jobID != c.jobID {
		return status.Errorf(codes.FailedPrecondition, "mapreduce: this coordinator runs job %s, not %q", c.jobID, jobID)
	}
	return nil
}

// rpcErr turns a scheduler error into a gRPC status.
func rpcErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrUnknownWorker):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrBadRequest):
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// Register admits a worker.
func (c *Coordinator) Register(_ context.Context, req *mrpb.RegisterRequest) (*mrpb.RegisterResponse, error) {
	if req.GetJobId() != "" {
		if err := c.check(req.GetJobId()); err != nil {
			return nil, err
		}
	}
	if _, _, err := net.SplitHostPort(req.GetAddr()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "mapreduce: worker address %q: %v", req.GetAddr(), err)
	}
	c.mu.Lock()
	id := c.s.register(req.GetAddr(), c.cfg.Now())
	c.mu.Unlock()
	c.cfg.Logger.Debug("mapreduce: worker registered", "worker", id, "addr", req.GetAddr())
	return &mrpb.RegisterResponse{JobId: c.jobID, WorkerId: id, Spec: c.cfg.Job.proto(),
		HeartbeatMs: uint32(c.cfg.Heartbeat / time.Millisecond)}, nil
}

// Heartbeat keeps a worker alive.
func (c *Coordinator) Heartbeat(_ context.Context, req *mrpb.HeartbeatRequest) (*mrpb.HeartbeatResponse, error) {
	if err := c.check(req.GetJobId()); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cancel, exit, err := c.s.heartbeat(req.GetWorkerId(), c.cfg.Now())
	if err != nil {
		return nil, rpcErr(err)
	}
	return &mrpb.HeartbeatResponse{Cancel: cancel, Exit: exit}, nil
}

// GetTask hands out a task.
func (c *Coordinator) GetTask(_ context.Context, req *mrpb.GetTaskRequest) (*mrpb.GetTaskResponse, error) {
	if err := c.check(req.GetJobId()); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok, exit, err := c.s.next(req.GetWorkerId(), c.cfg.Now())
	switch {
	case err != nil:
		return nil, rpcErr(err)
	case exit:
		return &mrpb.GetTaskResponse{Action: mrpb.Action_ACTION_EXIT}, nil
	case !ok:
		return &mrpb.GetTaskResponse{Action: mrpb.Action_ACTION_WAIT, WaitMs: uint32(c.cfg.Heartbeat / 2 / time.Millisecond)}, nil
	}
	t := &mrpb.Task{Index: uint32(a.t.index), Attempt: a.att.id, Try: uint32(a.try)}
	if a.t.kind == kindMap {
		t.Kind = mrpb.TaskKind_TASK_KIND_MAP
		t.Split = &mrpb.Split{File: a.t.split.File, Offset: a.t.split.Offset, Length: a.t.split.Length}
	} else {
		t.Kind = mrpb.TaskKind_TASK_KIND_REDUCE
		for _, o := range c.s.mapOutputs() {
			t.Inputs = append(t.Inputs, &mrpb.MapOutput{MapTask: uint32(o.task), Attempt: o.attempt, Addr: o.addr})
		}
	}
	c.cfg.Logger.Debug("mapreduce: task assigned", "kind", a.t.kind, "task", a.t.index, "attempt", a.att.id, "worker", req.GetWorkerId())
	return &mrpb.GetTaskResponse{Action: mrpb.Action_ACTION_RUN, Task: t}, nil
}

func kindOf(k mrpb.TaskKind) kind {
	switch k {
	case mrpb.TaskKind_TASK_KIND_MAP:
		return kindMap
	case mrpb.TaskKind_TASK_KIND_REDUCE:
		return kindReduce
	}
	return 0
}

// ReportTask records a finished map attempt or a failed attempt.
func (c *Coordinator) ReportTask(_ context.Context, req *mrpb.ReportTaskRequest) (*mrpb.ReportTaskResponse, error) {
	if err := c.check(req.GetJobId()); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	if _, err := c.s.worker(req.GetWorkerId(), now); err != nil {
		return nil, rpcErr(err)
	}
	t, err := c.s.lookup(kindOf(req.GetKind()), int(req.GetIndex()))
	if err != nil {
		return nil, rpcErr(err)
	}
	switch req.GetOutcome() {
	case mrpb.Outcome_OUTCOME_DONE:
		if t.kind != kindMap {
			return nil, status.Error(codes.InvalidArgument, "mapreduce: reduce tasks complete through CommitOutput")
		}
		c.s.complete(t, req.GetAttempt(), req.GetWorkerId(), now)
	case mrpb.Outcome_OUTCOME_FAILED:
		c.cfg.Logger.Info("mapreduce: task failed", "kind", t.kind, "task", t.index, "attempt", req.GetAttempt(), "err", req.GetError())
		c.s.fail(t, req.GetAttempt(), req.GetWorkerId(), truncate(req.GetError(), 4<<10))
	case mrpb.Outcome_OUTCOME_FETCH_FAILED:
		lost, err := c.s.lookup(kindMap, int(req.GetLostMapTask()))
		if err != nil || t.kind != kindReduce {
			return nil, status.Error(codes.InvalidArgument, "mapreduce: a fetch failure names a reduce task and a map task")
		}
		c.cfg.Logger.Warn("mapreduce: map output lost", "map", lost.index, "attempt", req.GetLostMapAttempt(), "reduce", t.index, "err", req.GetError())
		c.s.fetchFailed(t, req.GetAttempt(), req.GetWorkerId(), lost, req.GetLostMapAttempt())
	default:
		return nil, status.Errorf(codes.InvalidArgument, "mapreduce: unknown outcome %v", req.GetOutcome())
	}
	c.wake()
	return &mrpb.ReportTaskResponse{}, nil
}

// wake ends watch's wait early once the job is over. Called with mu held.
func (c *Coordinator) wake() {
	if done, _ := c.s.finished(); done {
		select {
		case <-c.doneCh:
		default:
			close(c.doneCh)
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// ReadSplit streams a map task's input split.
func (c *Coordinator) ReadSplit(req *mrpb.ReadSplitRequest, stream grpc.ServerStreamingServer[mrpb.Chunk]) error {
	if err := c.check(req.GetJobId()); err != nil {
		return err
	}
	c.mu.Lock()
	_, werr := c.s.worker(req.GetWorkerId(), c.cfg.Now())
	t, terr := c.s.lookup(kindMap, int(req.GetMapTask()))
	c.mu.Unlock()
	if err := errors.Join(werr, terr); err != nil {
		return rpcErr(err)
	}
	f, err := os.Open(t.split.File)
	if err != nil {
		return status.Errorf(codes.Unavailable, "mapreduce: input: %v", err)
	}
	defer f.Close()
	return sendStream(stream, io.NewSectionReader(f, t.split.Offset, t.split.Length), t.split.Length)
}

// sendStream sends r in chunks; the last chunk carries size and checksum.
// want, if not negative, is the size r must have.
func sendStream(stream grpc.ServerStreamingServer[mrpb.Chunk], r io.Reader, want int64) error {
	buf := make([]byte, chunkSize)
	var size int64
	var crc uint32
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			size += int64(n)
			crc = crc32.Update(crc, crcTable, buf[:n])
			if serr := stream.Send(&mrpb.Chunk{Data: buf[:n]}); serr != nil {
				return serr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return status.Errorf(codes.Unavailable, "mapreduce: reading: %v", err)
		}
	}
	if want >= 0 && size != want {
		return status.Errorf(codes.DataLoss, "mapreduce: file changed: read %d bytes, want %d", size, want)
	}
	return stream.Send(&mrpb.Chunk{Last: true, Size: size, Crc32C: crc})
}

// Status returns the job's progress.
func (c *Coordinator) Status(context.Context, *mrpb.StatusRequest) (*mrpb.StatusResponse, error) {
	return statusProto(c.Progress()), nil
}
