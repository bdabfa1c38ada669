package mapreduce

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"pgregory.net/rapid"

	"github.com/flotilla-dev/flotilla/proto/mrpb"
)

func TestRecordRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		kvs := rapid.SliceOf(rapid.Custom(func(t *rapid.T) KV {
			return KV{rapid.String().Draw(t, "k"), rapid.String().Draw(t, "v")}
		})).Draw(t, "kvs")
		var b bytes.Buffer
		bw := bufio.NewWriter(&b)
		for _, kv := range kvs {
			writeRecord(bw, kv)
		}
		bw.Flush()
		rr := newRecordReader(&b)
		var got []KV
		for kv, ok := rr.next(); ok; kv, ok = rr.next() {
			got = append(got, kv)
		}
		if rr.err != nil || !slices.Equal(got, kvs) {
			t.Fatalf("got %q, %v; want %q", got, rr.err, kvs)
		}
	})
}

func TestRecordLimits(t *testing.T) {
	for name, data := range map[string][]byte{
		"oversize key":   binary.AppendUvarint(nil, MaxRecord+1),
		"huge length":    binary.AppendUvarint(nil, 1<<62),
		"cut key":        append(binary.AppendUvarint(nil, 10), "abc"...),
		"missing value":  append(binary.AppendUvarint(nil, 1), 'k'),
		"bad varint":     bytes.Repeat([]byte{0xff}, 11),
		"oversize value": binary.AppendUvarint(append(binary.AppendUvarint(nil, 1), 'k'), MaxRecord+1),
	} {
		rr := newRecordReader(bytes.NewReader(data))
		if _, ok := rr.next(); ok || !errors.Is(rr.err, ErrCorrupt) {
			t.Errorf("%s: err %v, want ErrCorrupt", name, rr.err)
		}
	}
}

func FuzzRecordReader(f *testing.F) {
	f.Add([]byte{1, 'a', 1, 'b'})
	f.Add(binary.AppendUvarint(nil, MaxRecord+1))
	f.Fuzz(func(t *testing.T, data []byte) {
		rr := newRecordReader(bytes.NewReader(data))
		for n := 0; n <= len(data); n++ {
			if _, ok := rr.next(); !ok {
				return
			}
		}
		t.Fatal("more records than bytes")
	})
}

// TestSplits checks that splits tile each file and end at line ends.
func TestSplits(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		lines := rapid.SliceOf(rapid.StringMatching(`[a-z ]{0,40}`)).Draw(t, "lines")
		content := strings.Join(lines, "\n")
		if rapid.Bool().Draw(t, "trailing newline") && content != "" {
			content += "\n"
		}
		p := filepath.Join(os.TempDir(), "mr-split-test")
		os.WriteFile(p, []byte(content), 0o644)
		defer os.Remove(p)
		size := rapid.Int64Range(1, 100).Draw(t, "size")
		splits, err := planSplits([]string{p}, size)
		if err != nil {
			t.Fatal(err)
		}
		var off int64
		for _, sp := range splits {
			if sp.Offset != off || sp.Length <= 0 {
				t.Fatalf("split %+v after offset %d", sp, off)
			}
			off += sp.Length
			if off < int64(len(content)) && content[off-1] != '\n' {
				t.Fatalf("split %+v does not end at a line end", sp)
			}
			if sp.Length > size && strings.Contains(content[sp.Offset:sp.Offset+size-1], "\n") && content[sp.Offset+size-1] != '\n' {
				// a long split may only run past size to finish its last line
				if strings.Contains(content[sp.Offset+size:off-1], "\n") {
					t.Fatalf("split %+v runs past a line end beyond size %d", sp, size)
				}
			}
		}
		if off != int64(len(content)) {
			t.Fatalf("splits cover %d of %d bytes", off, len(content))
		}
	})
}

func TestSplitLongLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "long")
	os.WriteFile(p, append(bytes.Repeat([]byte("x"), MaxRecord+10), '\n', 'y', '\n'), 0o644)
	if _, err := planSplits([]string{p}, 1); !errors.Is(err, ErrInvalidJob) || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("planSplits = %v, want a too-long line", err)
	}
}

// TestSchedEachMapOnce: with no failures and no stragglers every task
// runs once.
func TestSchedEachMapOnce(t *testing.T) {
	now := time.Unix(0, 0)
	s := newSched(schedConfig{workerTimeout: time.Second, backupAfter: time.Second, backupFactor: 2, maxFailures: 3},
		make([]Split, 5), 2)
	ws := []uint64{s.register("a:1", now), s.register("b:1", now)}
	for i := 0; ; i++ {
		w := ws[i%2]
		a, ok, exit, err := s.next(w, now)
		if err != nil {
			t.Fatal(err)
		}
		if exit {
			break
		}
		if !ok {
			t.Fatalf("step %d: no task and not done", i)
		}
		if !s.complete(a.t, a.att.id, w, now.Add(time.Millisecond)) {
			t.Fatal("complete refused")
		}
	}
	if s.attempts[kindMap] != 5 || s.attempts[kindReduce] != 2 || s.backups != 0 {
		t.Errorf("attempts %v, backups %d", s.attempts, s.backups)
	}
}

// TestSchedLostWorker: a silent worker's in-progress and completed map
// tasks become idle; its late reports are ignored.
func TestSchedLostWorker(t *testing.T) {
	now := time.Unix(0, 0)
	s := newSched(schedConfig{workerTimeout: time.Second, backupAfter: time.Hour, maxFailures: 3}, make([]Split, 2), 1)
	w1, w2 := s.register("a:1", now), s.register("b:1", now)
	a1, _, _, _ := s.next(w1, now)
	s.complete(a1.t, a1.att.id, w1, now)
	a2, _, _, _ := s.next(w1, now)
	now = now.Add(2 * time.Second)
	s.heartbeat(w2, now)
	s.tick(now)
	if _, _, err := s.heartbeat(w1, now); !errors.Is(err, ErrUnknownWorker) {
		t.Fatalf("dead worker's heartbeat: %v", err)
	}
	if s.maps[0].state != idle || s.maps[1].state != idle || s.rerun != 2 {
		t.Fatalf("states %v %v, rerun %d", s.maps[0].state, s.maps[1].state, s.rerun)
	}
	if s.complete(a2.t, a2.att.id, w1, now) {
		t.Fatal("a dead worker's attempt completed")
	}
	b, ok, _, _ := s.next(w2, now)
	if !ok || b.try != 2 {
		t.Fatalf("re-run try %d", b.try)
	}
}

// TestSchedNoEarlyBackup: a phase with fewer tasks than workers does not
// back up its tasks before any completes, unless they run for long.
func TestSchedNoEarlyBackup(t *testing.T) {
	now := time.Unix(0, 0)
	s := newSched(schedConfig{workerTimeout: time.Hour, backupAfter: time.Second, backupFactor: 3, maxFailures: 3}, make([]Split, 1), 1)
	w1, w2 := s.register("a:1", now), s.register("b:1", now)
	s.next(w1, now)
	if _, ok, _, _ := s.next(w2, now.Add(5*time.Second)); ok {
		t.Fatal("backup with no completed attempt to compare to")
	}
	if _, ok, _, _ := s.next(w2, now.Add(11*time.Second)); !ok {
		t.Fatal("no backup of a task running 11 times backupAfter")
	}
}

// TestSchedBackup: the last straggling task gets one backup on another
// worker, and the loser is cancelled.
func TestSchedBackup(t *testing.T) {
	now := time.Unix(0, 0)
	s := newSched(schedConfig{workerTimeout: time.Hour, backupAfter: time.Second, backupFactor: 3, maxFailures: 3}, make([]Split, 2), 1)
	w1, w2 := s.register("a:1", now), s.register("b:1", now)
	slow, _, _, _ := s.next(w1, now)
	fast, _, _, _ := s.next(w2, now)
	s.complete(fast.t, fast.att.id, w2, now.Add(100*time.Millisecond))
	if _, ok, _, _ := s.next(w2, now.Add(500*time.Millisecond)); ok {
		t.Fatal("backup before the threshold")
	}
	if _, ok, _, _ := s.next(w1, now.Add(5*time.Second)); ok {
		t.Fatal("backup on the straggler's own worker")
	}
	b, ok, _, _ := s.next(w2, now.Add(5*time.Second))
	if !ok || b.t != slow.t || s.backups != 1 {
		t.Fatalf("no backup of the straggler")
	}
	if _, ok, _, _ := s.next(w2, now.Add(6*time.Second)); ok {
		t.Fatal("a second backup")
	}
	s.complete(b.t, b.att.id, w2, now.Add(6*time.Second))
	if cancel, _, _ := s.heartbeat(w1, now.Add(6*time.Second)); !slices.Equal(cancel, []uint64{slow.att.id}) {
		t.Fatalf("cancel %v, want the straggler's attempt %d", cancel, slow.att.id)
	}
	if s.complete(slow.t, slow.att.id, w1, now.Add(7*time.Second)) {
		t.Fatal("the loser completed")
	}
}

// TestMalformedRequests sends bad requests to a coordinator, which
// refuses them and then runs the job.
func TestMalformedRequests(t *testing.T) {
	files := corpus(t, 9, 2, 50<<10)
	out := filepath.Join(t.TempDir(), "out")
	tc := startCluster(t, fastConfig(Job{App: "wc", Reduces: 2}, files, out))
	cc, err := grpc.NewClient(tc.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cl := mrpb.NewCoordinatorClient(cc)
	ctx := context.Background()
	job := tc.c.JobID()
	reg, err := cl.Register(ctx, &mrpb.RegisterRequest{Addr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	id := reg.GetWorkerId()
	want := func(what string, err error, code codes.Code) {
		t.Helper()
		if status.Code(err) != code {
			t.Errorf("%s: %v, want %v", what, err, code)
		}
	}
	_, err = cl.Register(ctx, &mrpb.RegisterRequest{Addr: "no port"})
	want("register without a port", err, codes.InvalidArgument)
	_, err = cl.Register(ctx, &mrpb.RegisterRequest{Addr: "127.0.0.1:1", JobId: "old"})
	want("register for another job", err, codes.FailedPrecondition)
	_, err = cl.GetTask(ctx, &mrpb.GetTaskRequest{JobId: "old", WorkerId: id})
	want("another job", err, codes.FailedPrecondition)
	_, err = cl.GetTask(ctx, &mrpb.GetTaskRequest{JobId: job, WorkerId: 999})
	want("unknown worker", err, codes.NotFound)
	_, err = cl.Heartbeat(ctx, &mrpb.HeartbeatRequest{JobId: job, WorkerId: 0})
	want("worker 0", err, codes.NotFound)
	for _, r := range []*mrpb.ReportTaskRequest{
		{Kind: mrpb.TaskKind_TASK_KIND_MAP, Index: 1 << 31, Outcome: mrpb.Outcome_OUTCOME_DONE},
		{Kind: mrpb.TaskKind_TASK_KIND_UNSPECIFIED, Outcome: mrpb.Outcome_OUTCOME_DONE},
		{Kind: mrpb.TaskKind(77), Outcome: mrpb.Outcome_OUTCOME_FAILED},
		{Kind: mrpb.TaskKind_TASK_KIND_MAP, Outcome: mrpb.Outcome(9)},
		{Kind: mrpb.TaskKind_TASK_KIND_REDUCE, Outcome: mrpb.Outcome_OUTCOME_DONE},
		{Kind: mrpb.TaskKind_TASK_KIND_REDUCE, Outcome: mrpb.Outcome_OUTCOME_FETCH_FAILED, LostMapTask: 1000},
		{Kind: mrpb.TaskKind_TASK_KIND_MAP, Outcome: mrpb.Outcome_OUTCOME_FETCH_FAILED},
	} {
		r.JobId, r.WorkerId = job, id
		_, err := cl.ReportTask(ctx, r)
		want("report "+r.String(), err, codes.InvalidArgument)
	}
	// Reports of attempts that were never assigned are ignored.
	for _, o := range []mrpb.Outcome{mrpb.Outcome_OUTCOME_DONE, mrpb.Outcome_OUTCOME_FAILED} {
		_, err := cl.ReportTask(ctx, &mrpb.ReportTaskRequest{JobId: job, WorkerId: id, Kind: mrpb.TaskKind_TASK_KIND_MAP, Attempt: 12345, Outcome: o})
		want("stale report", err, codes.OK)
	}
	rs, err := cl.ReadSplit(ctx, &mrpb.ReadSplitRequest{JobId: job, WorkerId: id, MapTask: 1 << 30})
	if err == nil {
		_, err = rs.Recv()
	}
	want("read split of no task", err, codes.InvalidArgument)
	for _, msgs := range [][]*mrpb.CommitOutputRequest{
		{{JobId: job, WorkerId: id, ReduceTask: 1 << 20}},
		{{JobId: job, WorkerId: id, ReduceTask: 0, Attempt: 4242, Chunk: &mrpb.Chunk{Data: []byte("x"), Last: true}}},
		{},
	} {
		cs, err := cl.CommitOutput(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			cs.Send(m)
		}
		resp, err := cs.CloseAndRecv()
		if err == nil && resp.GetWon() {
			t.Errorf("commit %v won", msgs)
		}
	}
	if st, err := cl.Status(ctx, &mrpb.StatusRequest{}); err != nil || st.GetPhase() != "map" {
		t.Fatalf("status %v, %v", st, err)
	}
	tc.addWorker(WorkerConfig{})
	if err := tc.wait(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	checkWordCount(t, files, out, 2)
}

// TestWorkerRefusesOtherJob: a fetch for another job is refused.
func TestWorkerFetchOtherJob(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &worker{jobID: "a", dir: t.TempDir()}
	srv := grpc.NewServer()
	mrpb.RegisterWorkerServer(srv, w)
	go srv.Serve(lis)
	defer srv.Stop()
	cc, _ := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer cc.Close()
	for job, code := range map[string]codes.Code{"b": codes.FailedPrecondition, "a": codes.NotFound} {
		s, err := mrpb.NewWorkerClient(cc).Fetch(context.Background(), &mrpb.FetchRequest{JobId: job})
		if err == nil {
			_, err = s.Recv()
		}
		if status.Code(err) != code {
			t.Errorf("fetch for job %s: %v, want %v", job, err, code)
		}
	}
}

func TestPartitionIsFNV1a(t *testing.T) {
	for _, k := range []string{"", "a", "hello", "Grüße"} {
		h := fnv.New32a()
		h.Write([]byte(k))
		if got, want := Partition(k, 7), int(h.Sum32()%7); got != want {
			t.Errorf("Partition(%q, 7) = %d, want %d", k, got, want)
		}
	}
}

func FuzzParsePairs(f *testing.F) {
	f.Add([]byte("a\t1\nb\n\tc\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n := 0
		err := parsePairs(bytes.NewReader(data), func(k, v string) error {
			if len(k) > MaxRecord || len(v) > MaxRecord || strings.Contains(k, "\n") {
				t.Fatalf("pair %q %q", k, v)
			}
			n++
			return nil
		})
		if err == nil && n > bytes.Count(data, []byte("\n"))+1 {
			t.Fatalf("%d pairs from %d lines", n, bytes.Count(data, []byte("\n"))+1)
		}
	})
}
