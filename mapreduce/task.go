package mapreduce

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/proto/mrpb"
)

// Partition returns the reduce partition of key: a hash of the key modulo
// reduces (MapReduce paper §4.1).
func Partition(key string, reduces int) int {
	h := uint32(2166136261) // FNV-1a, 32 bits
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h % uint32(reduces))
}

// runMap runs a map attempt: read the split from the coordinator, map it,
// and write R sorted (and combined) partition files.
func (w *worker) runMap(ctx context.Context, t *mrpb.Task) error {
	sp := t.GetSplit()
	stream, err := w.coord.ReadSplit(ctx, &mrpb.ReadSplitRequest{JobId: w.jobID, WorkerId: w.workerID(), MapTask: t.GetIndex()})
	if err != nil {
		return fmt.Errorf("reading the split: %w", err)
	}
	R := w.job.Reduces
	parts := make([][]KV, R)
	var size int64
	emit := func(k, v string) error {
		if len(k) > MaxRecord || len(v) > MaxRecord {
			return fmt.Errorf("mapreduce: a key or value over %d bytes", MaxRecord)
		}
		if size += int64(len(k) + len(v)); size > w.cfg.MaxMapOutput {
			return fmt.Errorf("mapreduce: map output over %d bytes", w.cfg.MaxMapOutput)
		}
		p := Partition(k, R)
		parts[p] = append(parts[p], KV{k, v})
		return nil
	}
	in := Split{File: sp.GetFile(), Offset: sp.GetOffset(), Length: sp.GetLength()}
	r := &chunkReader{recv: stream.Recv}
	if err := w.app.Map(ctx, in, r, emit); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, r); err != nil { // check the trailer
		return err
	}
	tmp := filepath.Join(w.dir, "."+mapDir(int(t.GetIndex()), t.GetAttempt())+".tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for p, kvs := range parts {
		if err := w.writePartition(ctx, filepath.Join(tmp, partFile(p)), kvs); err != nil {
			return err
		}
	}
	return os.Rename(tmp, filepath.Join(w.dir, mapDir(int(t.GetIndex()), t.GetAttempt())))
}

// sortKVs sorts by key; the order of one key's values is unspecified, as
// in the paper.
func sortKVs(kvs []KV) {
	slices.SortFunc(kvs, func(a, b KV) int { return strings.Compare(a.Key, b.Key) })
}

func seq(kvs []KV) func(func(string, string) bool) {
	return func(yield func(string, string) bool) {
		for _, kv := range kvs {
			if !yield(kv.Key, kv.Value) {
				return
			}
		}
	}
}

// writePartition sorts kvs, runs the combiner over them, and writes them.
func (w *worker) writePartition(ctx context.Context, path string, kvs []KV) error {
	sortKVs(kvs)
	if c, ok := w.app.(Combiner); ok && !w.job.NoCombine && len(kvs) > 0 {
		var out []KV
		err := c.Combine(ctx, seq(kvs), func(k, v string) error {
			if len(k) > MaxRecord || len(v) > MaxRecord {
				return fmt.Errorf("mapreduce: a combined key or value over %d bytes", MaxRecord)
			}
			out = append(out, KV{k, v})
			return nil
		})
		if err != nil {
			return err
		}
		kvs = out
		sortKVs(kvs)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	for _, kv := range kvs {
		writeRecord(bw, kv)
	}
	err = bw.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// runReduce runs a reduce attempt: fetch the partition from every map
// task's worker, merge, reduce, and commit the output to the coordinator.
func (w *worker) runReduce(ctx context.Context, t *mrpb.Task) error {
	dir, err := os.MkdirTemp(w.dir, fmt.Sprintf(".r-%d-%d-", t.GetIndex(), t.GetAttempt()))
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	paths, err := w.fetchAll(ctx, t, dir)
	if err != nil {
		return err
	}
	m, err := openMerger(paths)
	if err != nil {
		return err
	}
	defer m.Close()
	outPath := filepath.Join(dir, "out")
	f, err := os.Create(outPath)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	err = w.app.Reduce(ctx, m.All(), func(k, v string) error {
		bw.WriteString(k)
		bw.WriteByte(' ')
		bw.WriteString(v)
		return bw.WriteByte('\n')
	})
	if err == nil {
		err = m.Err()
	}
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return w.commit(ctx, t, outPath)
}

// fetchAll fetches partition t.Index of every map output into dir, a few
// at a time.
func (w *worker) fetchAll(parent context.Context, t *mrpb.Task, dir string) ([]string, error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	inputs := t.GetInputs()
	paths := make([]string, len(inputs))
	errs := make([]error, len(inputs))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, in := range inputs {
		paths[i] = filepath.Join(dir, fmt.Sprintf("in-%d", i))
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := w.fetch(ctx, in, t.GetIndex(), paths[i]); err != nil {
				errs[i] = err
				cancel()
			}
		}()
	}
	wg.Wait()
	if err := parent.Err(); err != nil {
		return nil, err
	}
	for _, cancelled := range []bool{false, true} { // the cause first, not its victims
		for i, err := range errs {
			if err != nil && cancelled == (errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled) {
				return nil, &fetchError{out: inputs[i], err: err}
			}
		}
	}
	return paths, nil
}

// fetch copies one map output partition from its worker to path, giving
// up if no chunk arrives for FetchTimeout.
func (w *worker) fetch(ctx context.Context, in *mrpb.MapOutput, partition uint32, path string) error {
	cl, err := w.peers.get(in.GetAddr())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := time.AfterFunc(w.cfg.FetchTimeout, func() {
		cancel(fmt.Errorf("mapreduce: no data from %s for %v", in.GetAddr(), w.cfg.FetchTimeout))
	})
	defer idle.Stop()
	stream, err := cl.Fetch(ctx, &mrpb.FetchRequest{JobId: w.jobID, MapTask: in.GetMapTask(), Attempt: in.GetAttempt(), Partition: partition})
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	recv := func() (*mrpb.Chunk, error) {
		ch, err := stream.Recv()
		idle.Reset(w.cfg.FetchTimeout)
		return ch, err
	}
	_, err = io.Copy(f, &chunkReader{recv: recv})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if c := context.Cause(ctx); err != nil && c != nil && ctx.Err() != nil && !errors.Is(c, context.Canceled) {
		err = c
	}
	return err
}

// commit streams the output file to the coordinator.
func (w *worker) commit(ctx context.Context, t *mrpb.Task, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	stream, err := w.coord.CommitOutput(ctx)
	if err != nil {
		return fmt.Errorf("committing the output: %w", err)
	}
	buf := make([]byte, chunkSize)
	var size int64
	var crc uint32
	req := &mrpb.CommitOutputRequest{JobId: w.jobID, WorkerId: w.workerID(), ReduceTask: t.GetIndex(), Attempt: t.GetAttempt()}
	for {
		n, rerr := io.ReadFull(f, buf)
		size += int64(n)
		crc = crc32.Update(crc, crcTable, buf[:n])
		ch := &mrpb.Chunk{Data: buf[:n]}
		last := rerr == io.EOF || rerr == io.ErrUnexpectedEOF
		if rerr != nil && !last {
			return rerr
		}
		if last {
			ch.Last, ch.Size, ch.Crc32C = true, size, crc
		}
		req.Chunk = ch
		if err := stream.Send(req); err != nil {
			break // the real error comes from CloseAndRecv
		}
		req = &mrpb.CommitOutputRequest{}
		if last {
			break
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return fmt.Errorf("committing the output: %w", err)
	}
	if !resp.GetWon() {
		w.cfg.Logger.Debug("mapreduce: reduce attempt lost the race", "task", t.GetIndex(), "attempt", t.GetAttempt())
	}
	return errCommitted
}

// chunkReader reads a stream of Chunks, checking the trailer's size and
// checksum at the end.
type chunkReader struct {
	recv func() (*mrpb.Chunk, error)
	buf  []byte
	size int64
	crc  uint32
	err  error
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		ch, err := r.recv()
		if err == io.EOF {
			r.err = fmt.Errorf("%w: stream ended without its trailer", ErrCorrupt)
			continue
		}
		if err != nil {
			r.err = err
			continue
		}
		r.buf = ch.GetData()
		r.size += int64(len(r.buf))
		r.crc = crc32.Update(r.crc, crcTable, r.buf)
		if ch.GetLast() {
			r.err = io.EOF
			if ch.GetSize() != r.size || ch.GetCrc32C() != r.crc {
				r.err = fmt.Errorf("%w: received %d bytes, the sender sent %d (or a checksum mismatch)", ErrCorrupt, r.size, ch.GetSize())
				r.buf = nil
			}
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// peers caches client connections to other workers.
type peers struct {
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func newPeers() *peers { return &peers{conns: map[string]*grpc.ClientConn{}} }

func (p *peers) get(addr string) (mrpb.WorkerClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cc := p.conns[addr]
	if cc == nil {
		var err error
		if cc, err = grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
			return nil, err
		}
		p.conns[addr] = cc
	}
	return mrpb.NewWorkerClient(cc), nil
}

func (p *peers) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, cc := range p.conns {
		cc.Close()
	}
}
