package mapreduce

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/proto/mrpb"
)

// CommitOutput receives a reduce attempt's output into a temp file in the
// output directory and renames it into place if the attempt is the first
// to finish its task (MapReduce paper §3.3: atomic commits of reduce
// outputs).
func (c *Coordinator) CommitOutput(stream grpc.ClientStreamingServer[mrpb.CommitOutputRequest, mrpb.CommitOutputResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	if err := c.check(first.GetJobId()); err != nil {
		return err
	}
	worker, att := first.GetWorkerId(), first.GetAttempt()
	c.mu.Lock()
	_, werr := c.s.worker(worker, c.cfg.Now())
	t, terr := c.s.lookup(kindReduce, int(first.GetReduceTask()))
	ok := werr == nil && terr == nil && c.s.canWin(t, att, worker)
	c.mu.Unlock()
	if err := errors.Join(werr, terr); err != nil {
		return rpcErr(err)
	}
	if !ok {
		return stream.SendAndClose(&mrpb.CommitOutputResponse{Won: false})
	}
	tmp, err := c.receive(stream, first, t.index, att)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // no-op after the rename
	c.mu.Lock()
	defer c.mu.Unlock()
	won := c.s.canWin(t, att, worker)
	if won {
		if err := os.Rename(tmp, filepath.Join(c.cfg.OutDir, PartitionFile(t.index))); err != nil {
			c.s.fail(t, att, worker, err.Error())
			return status.Errorf(codes.Internal, "mapreduce: output: %v", err)
		}
		syncDir(c.cfg.OutDir)
		c.s.complete(t, att, worker, c.cfg.Now())
		c.wake()
	}
	return stream.SendAndClose(&mrpb.CommitOutputResponse{Won: won})
}

// receive writes the streamed chunks to a synced temp file in OutDir and
// returns its name.
func (c *Coordinator) receive(stream grpc.ClientStreamingServer[mrpb.CommitOutputRequest, mrpb.CommitOutputResponse], first *mrpb.CommitOutputRequest, task int, att uint64) (string, error) {
	f, err := os.CreateTemp(c.cfg.OutDir, fmt.Sprintf(".%s.%d.tmp*", PartitionFile(task), att))
	if err != nil {
		return "", status.Errorf(codes.Internal, "mapreduce: output: %v", err)
	}
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	var size int64
	var crc uint32
	for msg := first; ; {
		ch := msg.GetChunk()
		if _, err := f.Write(ch.GetData()); err != nil {
			return fail(status.Errorf(codes.Internal, "mapreduce: output: %v", err))
		}
		size += int64(len(ch.GetData()))
		crc = crc32.Update(crc, crcTable, ch.GetData())
		if ch.GetLast() {
			if ch.GetSize() != size || ch.GetCrc32C() != crc {
				return fail(status.Errorf(codes.DataLoss, "mapreduce: output stream of %d bytes does not match its trailer (%d bytes)", size, ch.GetSize()))
			}
			break
		}
		if msg, err = stream.Recv(); err != nil {
			if err == io.EOF {
				err = status.Error(codes.InvalidArgument, "mapreduce: output stream ended without its last chunk")
			}
			return fail(err)
		}
	}
	if err := f.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(status.Errorf(codes.Internal, "mapreduce: output: %v", err))
	}
	if err := f.Close(); err != nil {
		return fail(status.Errorf(codes.Internal, "mapreduce: output: %v", err))
	}
	return f.Name(), nil
}

// writeFileAtomic writes data to dir/name through a synced temp file.
func writeFileAtomic(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, name))
	}
	if err == nil {
		syncDir(dir)
	}
	return err
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Status is a snapshot of a job's progress.
type Status struct {
	JobID string
	Job   Job
	// Phase is "map", "reduce", "done" or "failed".
	Phase string
	Err   string
	// Maps and Reduces count tasks by state.
	Maps, Reduces Counts
	// Failed counts failed attempts; Rerun counts tasks made idle again
	// after a lost worker or map output; Backups counts backup attempts.
	Failed, Rerun, Backups int
	// MapAttempts and ReduceAttempts count the attempts started.
	MapAttempts, ReduceAttempts int
	// Workers is the number of live workers.
	Workers int
	Elapsed time.Duration
}

// Counts counts tasks by state.
type Counts struct{ Idle, Running, Done int }

// Progress returns the job's progress.
func (c *Coordinator) Progress() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{JobID: c.jobID, Job: c.cfg.Job, Failed: c.s.failed, Rerun: c.s.rerun, Backups: c.s.backups,
		MapAttempts: c.s.attempts[kindMap], ReduceAttempts: c.s.attempts[kindReduce], Workers: len(c.s.workers), Elapsed: c.cfg.Now().Sub(c.start)}
	st.Maps.Idle, st.Maps.Running, st.Maps.Done = counts(c.s.maps)
	st.Reduces.Idle, st.Reduces.Running, st.Reduces.Done = counts(c.s.reduces)
	done, err := c.s.finished()
	switch {
	case err != nil:
		st.Phase, st.Err = "failed", err.Error()
	case done:
		st.Phase = "done"
	case st.Maps.Done < len(c.s.maps):
		st.Phase = "map"
	default:
		st.Phase = "reduce"
	}
	return st
}

func statusProto(st Status) *mrpb.StatusResponse {
	tc := func(c Counts) *mrpb.TaskCounts {
		return &mrpb.TaskCounts{Idle: uint32(c.Idle), Running: uint32(c.Running), Done: uint32(c.Done)}
	}
	return &mrpb.StatusResponse{JobId: st.JobID, Spec: st.Job.proto(), Phase: st.Phase, Error: st.Err,
		Maps: tc(st.Maps), Reduces: tc(st.Reduces), Failed: uint32(st.Failed), Rerun: uint32(st.Rerun),
		Backups: uint32(st.Backups), Workers: uint32(st.Workers), ElapsedMs: st.Elapsed.Milliseconds(),
		MapAttempts: uint32(st.MapAttempts), ReduceAttempts: uint32(st.ReduceAttempts)}
}

// StatusFromProto converts a Status RPC's answer.
func StatusFromProto(p *mrpb.StatusResponse) Status {
	tc := func(c *mrpb.TaskCounts) Counts {
		return Counts{Idle: int(c.GetIdle()), Running: int(c.GetRunning()), Done: int(c.GetDone())}
	}
	return Status{JobID: p.GetJobId(), Job: jobFromProto(p.GetSpec()), Phase: p.GetPhase(), Err: p.GetError(),
		Maps: tc(p.GetMaps()), Reduces: tc(p.GetReduces()), Failed: int(p.GetFailed()), Rerun: int(p.GetRerun()),
		Backups: int(p.GetBackups()), Workers: int(p.GetWorkers()),
		MapAttempts: int(p.GetMapAttempts()), ReduceAttempts: int(p.GetReduceAttempts()), Elapsed: time.Duration(p.GetElapsedMs()) * time.Millisecond}
}

// String is a one-line progress report.
func (st Status) String() string {
	s := fmt.Sprintf("%s: map %d/%d done, %d running | reduce %d/%d done, %d running | failed %d, rerun %d, backups %d | %d workers",
		st.Phase, st.Maps.Done, st.Maps.Idle+st.Maps.Running+st.Maps.Done, st.Maps.Running,
		st.Reduces.Done, st.Reduces.Idle+st.Reduces.Running+st.Reduces.Done, st.Reduces.Running,
		st.Failed, st.Rerun, st.Backups, st.Workers)
	if st.Err != "" {
		s += " | " + st.Err
	}
	return s
}
