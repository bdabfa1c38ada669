package dsort

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of a distributed run.
var (
	// ErrPeer reports a peer that failed, refused us, or cut its stream.
	ErrPeer = errors.New("dsort: peer failed")
	// ErrMismatch reports peers that run different configs.
	ErrMismatch = errors.New("dsort: config mismatch")
)

// Input is the part of a file one node reads: Length bytes from Offset
// (Length < 0: to the end of the file).
type Input struct {
	Path           string
	Offset, Length int64
}

// NodeOptions tunes one node of a distributed run. The zero value is usable.
type NodeOptions struct {
	Options
	// Listener, when set, is used instead of listening on the node's
	// config address (tests and Cluster pass pre-bound listeners). Run
	// closes it.
	Listener net.Listener
	// DialTimeout is how long to keep retrying peers that are not up yet
	// (default 30s). Peers may start in any order within it.
	DialTimeout time.Duration
	// IdleTimeout fails the run when a peer's stream makes no progress for
	// this long, in either direction (default 2m): a peer that hangs
	// (SIGSTOP, a dead host without a reset) cannot stall the others
	// forever. It must exceed the longest spill a node may do.
	IdleTimeout time.Duration

	// beforeEnd, a test hook, runs in each sender before it writes End.
	beforeEnd func(ctx context.Context, peer int)
	// Progress, when set, receives a progress line every ProgressEvery
	// (default 2s) while the run lasts.
	Progress      io.Writer
	ProgressEvery time.Duration
	// Logger logs connection events (default: discard).
	Logger *slog.Logger
}

// NodeStats describes one node's finished run.
type NodeStats struct {
	Stats
	Input Sum   // the records this node read
	Sent  []Sum // records sent to each server (this node's own at its index)
}

// node is one participant of Run. Fields set before the goroutines start
// are read-only afterwards; counters are atomic; runs is guarded by mu.
type node struct {
	cfg  Config
	id   int
	n    int
	hash [32]byte
	opt  NodeOptions
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelCauseFunc

	mu   sync.Mutex // guards runs
	runs *runs

	connMu   sync.Mutex
	conns    []net.Conn // every connection, closed when the run ends
	incoming []net.Conn // accepted connections (we may write an Error back)
	closed   bool

	samples chan peerSample // peers' samples (sampled partitioning)

	read, sent, recv atomic.Int64 // bytes, for progress
	streams          atomic.Int32 // connections handshaken, both ways
	total            int64        // bytes of input
}

// Run runs node id of the cluster cfg: it reads in, sends every record to
// the server whose range holds it, receives its own range from every peer
// and writes it sorted to output (atomically). Every node of cfg must run
// Run with the same cfg; they may start in any order within DialTimeout.
// If any node fails, the others fail with an error naming it, and no
// output file is left.
func Run(ctx context.Context, cfg Config, id int, in Input, output string, opt NodeOptions) (NodeStats, error) {
	start := time.Now()
	if err := cfg.Normalize(); err != nil {
		closeListener(opt.Listener)
		return NodeStats{}, err
	}
	if id < 0 || id >= len(cfg.Servers) {
		closeListener(opt.Listener)
		return NodeStats{}, fmt.Errorf("%w: node id %d not in the config (0..%d)", ErrConfig, id, len(cfg.Servers)-1)
	}
	f, off, size, err := openInput(in)
	if err != nil {
		closeListener(opt.Listener)
		notifyPeers(ctx, cfg, id, err)
		return NodeStats{}, fmt.Errorf("node %d: %w", id, err)
	}
	defer f.Close()
	nd := &node{
		cfg: cfg, id: id, n: len(cfg.Servers), hash: cfg.Hash(), opt: opt, total: size,
		runs:    newRuns(opt.mem(), opt.tempDir(output), opt.Workers, !opt.NoSync),
		samples: make(chan peerSample, len(cfg.Servers)),
	}
	defer nd.runs.close()
	nd.log = opt.Logger
	if nd.log == nil {
		nd.log = slog.New(slog.DiscardHandler)
	}
	nd.ctx, nd.cancel = context.WithCancelCause(ctx)
	defer nd.cancel(nil)
	st, err := nd.run(f, off, size)
	if err != nil {
		return st, fmt.Errorf("node %d: %w", id, err)
	}
	if st.Sum, err = nd.runs.finish(output); err != nil {
		return st, fmt.Errorf("node %d: %w", id, err)
	}
	st.Runs = nd.runs.spilled()
	st.Duration = time.Since(start)
	nd.progress(st.Duration, true)
	return st, nil
}

func (o NodeOptions) idle() time.Duration {
	if o.IdleTimeout <= 0 {
		return 2 * time.Minute
	}
	return o.IdleTimeout
}

func closeListener(l net.Listener) {
	if l != nil {
		l.Close()
	}
}

// openInput opens in and checks its range holds whole records.
func openInput(in Input) (*os.File, int64, int64, error) {
	f, err := os.Open(in.Path)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("dsort: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, 0, fmt.Errorf("dsort: %w", err)
	}
	size := fi.Size() - in.Offset
	if in.Length >= 0 {
		size = min(size, in.Length)
	}
	if in.Offset < 0 || size < 0 {
		f.Close()
		return nil, 0, 0, fmt.Errorf("dsort: %s: range at %d is outside the file", in.Path, in.Offset)
	}
	if err := checkSize(in.Path, size); err != nil {
		f.Close()
		return nil, 0, 0, err
	}
	return f, in.Offset, size, nil
}

// fail ends the run with err unless it already ended.
func (nd *node) fail(err error) {
	if err != nil {
		nd.cancel(err)
	}
}

// track registers c to be closed when the run ends; it reports false (and
// closes c) if the run already ended.
func (nd *node) track(c net.Conn) bool {
	nd.connMu.Lock()
	defer nd.connMu.Unlock()
	if nd.closed {
		c.Close()
		return false
	}
	nd.conns = append(nd.conns, c)
	return true
}

// lingerTime bounds how long a failing node drains its connections.
const lingerTime = time.Second

// halfClose stops accepting and half-closes every TCP connection.
func (nd *node) halfClose() {
	nd.connMu.Lock()
	defer nd.connMu.Unlock()
	for _, c := range nd.conns {
		switch c := c.(type) {
		case *net.TCPConn:
			c.CloseWrite()
		case *listenerConn:
			c.Close()
		}
	}
}

func (nd *node) closeAll() {
	nd.connMu.Lock()
	defer nd.connMu.Unlock()
	nd.closed = true
	for _, c := range nd.conns {
		c.Close()
	}
}

// run connects to every peer, streams the input out and the peers' records
// in, and returns once every stream has ended.
func (nd *node) run(f *os.File, off, size int64) (NodeStats, error) {
	st := NodeStats{Sent: make([]Sum, nd.n)}
	defer nd.closeAll() // also on the early returns below
	ln := nd.opt.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", nd.cfg.Servers[nd.id].Addr()); err != nil {
			return st, fmt.Errorf("listen: %w", err)
		}
	}
	if !nd.track(&listenerConn{ln}) {
		return st, context.Cause(nd.ctx)
	}
	var sample []byte
	if nd.cfg.Partition == PartitionSample {
		var err error
		if sample, err = sampleKeys(f, off, size/RecordSize, nd.cfg.SampleSize); err != nil {
			return st, err
		}
	}
	outs := make([]*peerOut, nd.n)
	var wg, rev sync.WaitGroup // rev: readers of our outgoing conns' reverse direction
	wg.Go(func() { nd.fail(nd.acceptAll(ln, &wg)) })
	for j := range nd.n {
		if j == nd.id {
			continue
		}
		outs[j] = newPeerOut(j)
		outs[j].idle = nd.opt.idle()
		wg.Go(func() { nd.fail(nd.sendTo(outs[j], sample, &rev)) })
	}
	stop := nd.startProgress()
	wg.Go(func() { nd.fail(nd.readInput(f, off, size, sample, outs, &st)) })
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-nd.ctx.Done():
	}
	err := context.Cause(nd.ctx)
	if err != nil {
		// Tell the peers why, then close gracefully: half-close and keep
		// draining for a moment, because closing a socket with unread data
		// resets it and the peer would never read our Error frame.
		nd.broadcastError(err, outs)
		nd.halfClose()
		t := time.NewTimer(lingerTime)
		select {
		case <-done:
		case <-t.C:
		}
		t.Stop()
	}
	nd.closeAll()
	<-done
	rev.Wait()
	stop()
	if err == nil {
		err = context.Cause(nd.ctx) // a late failure of a reverse reader
	}
	return st, err
}

// listenerConn lets the listener be closed with the connections.
type listenerConn struct{ net.Listener }

func (listenerConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (listenerConn) Write([]byte) (int, error)        { return 0, io.ErrClosedPipe }
func (listenerConn) LocalAddr() net.Addr              { return nil }
func (listenerConn) RemoteAddr() net.Addr             { return nil }
func (listenerConn) SetDeadline(time.Time) error      { return nil }
func (listenerConn) SetReadDeadline(time.Time) error  { return nil }
func (listenerConn) SetWriteDeadline(time.Time) error { return nil }
func (l *listenerConn) Close() error                  { return l.Listener.Close() }

// readInput reads the input in large chunks and hands every record to its
// server: peers through their bounded send queues (blocking when a peer
// is slow: backpressure), this node's own straight into its runs.
func (nd *node) readInput(f *os.File, off, size int64, sample []byte, outs []*peerOut, st *NodeStats) error {
	p, err := nd.partitioner(sample)
	if err != nil {
		return err
	}
	chunk := make([]byte, min(size, 4_000_000))
	self := make([]byte, 0, sendBufRecords*RecordSize)
	cur := make([]*sendBuf, nd.n)
	flushSelf := func() error {
		nd.mu.Lock()
		defer nd.mu.Unlock()
		st.Sent[nd.id].Add(self)
		err := nd.runs.add(self)
		self = self[:0]
		return err
	}
	for pos := int64(0); pos < size; {
		b := chunk[:min(int64(len(chunk)), size-pos)]
		if _, err := f.ReadAt(b, off+pos); err != nil {
			return fmt.Errorf("read %s: %w", f.Name(), err)
		}
		pos += int64(len(b))
		st.Input.Add(b)
		for i := 0; i < len(b); i += RecordSize {
			rec := b[i : i+RecordSize]
			d := p.dest(rec)
			if d == nd.id {
				self = append(self, rec...)
				if len(self) == cap(self) {
					if err := flushSelf(); err != nil {
						return err
					}
				}
				continue
			}
			if cur[d] == nil {
				if cur[d], err = outs[d].get(nd.ctx); err != nil {
					return err
				}
			}
			if cur[d].add(rec) {
				if err := outs[d].put(nd.ctx, cur[d]); err != nil {
					return err
				}
				cur[d] = nil
			}
		}
		nd.read.Add(int64(len(b)))
	}
	for d, b := range cur {
		if b != nil {
			if err := outs[d].put(nd.ctx, b); err != nil {
				return err
			}
		}
	}
	for _, o := range outs {
		if o != nil {
			o.close()
		}
	}
	if err := flushSelf(); err != nil {
		return err
	}
	for d, o := range outs {
		if o != nil {
			if st.Sent[d], err = o.wait(nd.ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// partitioner returns the ranges: at once for equal widths, or after every
// peer's sample has arrived.
func (nd *node) partitioner(sample []byte) (*partitioner, error) {
	if nd.cfg.Partition != PartitionSample {
		return &partitioner{n: nd.n}, nil
	}
	samples := make([][]byte, nd.n)
	samples[nd.id] = sample
	for got := 1; got < nd.n; got++ {
		select {
		case s := <-nd.samples:
			samples[s.from] = s.keys
		case <-nd.ctx.Done():
			return nil, context.Cause(nd.ctx)
		}
	}
	return sampledPartitioner(nd.n, samples), nil
}

// startProgress prints a progress line every ProgressEvery until stopped.
func (nd *node) startProgress() (stop func()) {
	if nd.opt.Progress == nil {
		return func() {}
	}
	every := nd.opt.ProgressEvery
	if every <= 0 {
		every = 2 * time.Second
	}
	start := time.Now()
	t := time.NewTicker(every)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-t.C:
				nd.progress(time.Since(start), false)
			case <-quit:
				return
			}
		}
	})
	return func() { t.Stop(); close(quit); wg.Wait() }
}

func (nd *node) progress(elapsed time.Duration, final bool) {
	if nd.opt.Progress == nil {
		return
	}
	what := "sorting"
	if final {
		what = "done"
	}
	pct := 100.0
	if nd.total > 0 {
		pct = 100 * float64(nd.read.Load()) / float64(nd.total)
	}
	fmt.Fprintf(nd.opt.Progress, "dsort node %d %s: connected %d/%d, read %.1f/%.1f MB (%.0f%%), sent %.1f MB, received %.1f MB, %.1fs\n",
		nd.id, what, nd.streams.Load(), 2*(nd.n-1), float64(nd.read.Load())/1e6, float64(nd.total)/1e6, pct,
		float64(nd.sent.Load())/1e6, float64(nd.recv.Load())/1e6, elapsed.Seconds())
}
