package dsort

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/dsort/wire"
)

// testCluster is n nodes' config with listeners bound on free ports.
type testCluster struct {
	cfg Config
	lns []net.Listener
	dir string
}

func newTestCluster(t *testing.T, n int, partition string) *testCluster {
	t.Helper()
	tc := &testCluster{cfg: Config{Partition: partition}, dir: t.TempDir()}
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tc.lns = append(tc.lns, l)
		tc.cfg.Servers = append(tc.cfg.Servers, Server{ID: i, Host: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port})
	}
	t.Cleanup(func() {
		for _, l := range tc.lns {
			if l != nil {
				l.Close()
			}
		}
	})
	return tc
}

func (tc *testCluster) out(i int) string { return filepath.Join(tc.dir, fmt.Sprintf("out.%d", i)) }

// run runs node i in the background and returns its result channel.
func (tc *testCluster) run(ctx context.Context, i int, in string, opt NodeOptions) <-chan error {
	ch := make(chan error, 1)
	if opt.Listener == nil {
		opt.Listener = tc.lns[i]
	}
	tc.lns[i] = nil // Run owns it now
	if opt.DialTimeout == 0 {
		opt.DialTimeout = 10 * time.Second
	}
	go func() {
		_, err := Run(ctx, tc.cfg, i, Input{Path: in, Length: -1}, tc.out(i), opt)
		ch <- err
	}()
	return ch
}

// runAll runs every node on its input and returns their errors.
func (tc *testCluster) runAll(inputs []string, opt NodeOptions) []error {
	chs := make([]<-chan error, len(inputs))
	for i, in := range inputs {
		chs[i] = tc.run(bg, i, in, opt)
	}
	errs := make([]error, len(inputs))
	for i, ch := range chs {
		errs[i] = <-ch
	}
	return errs
}

func (tc *testCluster) outs() []string {
	var o []string
	for i := range tc.cfg.Servers {
		o = append(o, tc.out(i))
	}
	return o
}

// genInputs writes one input per node (counts[i] records) and returns
// their paths and total Sum.
func genInputs(t *testing.T, dir string, counts []uint64, o GenOptions) ([]string, Sum) {
	t.Helper()
	var paths []string
	var total Sum
	for i, c := range counts {
		o.Start = uint64(i) * 1_000_000
		p, s := genFile(t, dir, fmt.Sprintf("in.%d", i), c, o)
		paths = append(paths, p)
		total.Merge(s)
	}
	return paths, total
}

func repeat(n int, c uint64) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = c
	}
	return s
}

func noErrors(t *testing.T, errs []error) {
	t.Helper()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: %v", i, err)
		}
	}
}

func TestRunNodes(t *testing.T) {
	for _, n := range []int{1, 2, 4, 8, 16} {
		for _, part := range []string{PartitionBits, PartitionSample} {
			t.Run(fmt.Sprintf("%d-%s", n, part), func(t *testing.T) {
				tc := newTestCluster(t, n, part)
				ins, sum := genInputs(t, tc.dir, repeat(n, 3000), GenOptions{Seed: uint64(n)})
				noErrors(t, tc.runAll(ins, NodeOptions{}))
				checkSorted(t, sum, tc.outs()...)
			})
		}
	}
}

// TestRunThreeNodes covers a node count that is not a power of two.
func TestRunThreeNodes(t *testing.T) {
	tc := newTestCluster(t, 3, PartitionBits)
	ins, sum := genInputs(t, tc.dir, []uint64{5000, 1, 2000}, GenOptions{Seed: 3, ASCII: true})
	noErrors(t, tc.runAll(ins, NodeOptions{}))
	checkSorted(t, sum, tc.outs()...)
}

func TestRunEmptyInputs(t *testing.T) {
	for name, counts := range map[string][]uint64{
		"some": {0, 4000, 0, 100},
		"all":  {0, 0, 0, 0},
	} {
		for _, part := range []string{PartitionBits, PartitionSample} {
			t.Run(name+"-"+part, func(t *testing.T) {
				tc := newTestCluster(t, len(counts), part)
				ins, sum := genInputs(t, tc.dir, counts, GenOptions{Seed: 5})
				noErrors(t, tc.runAll(ins, NodeOptions{}))
				checkSorted(t, sum, tc.outs()...)
			})
		}
	}
}

// TestRunSkew sends every key to node 0 under equal-width ranges, and
// checks that sampled ranges spread the same skewed input.
func TestRunSkew(t *testing.T) {
	const n, per = 4, 5000
	for _, part := range []string{PartitionBits, PartitionSample} {
		t.Run(part, func(t *testing.T) {
			tc := newTestCluster(t, n, part)
			ins, sum := genInputs(t, tc.dir, repeat(n, per), GenOptions{Seed: 8})
			for _, in := range ins { // all keys below 2^78: node 0's quarter
				b, _ := os.ReadFile(in)
				for i := 0; i < len(b); i += RecordSize {
					b[i] &= 0x3f
				}
				os.WriteFile(in, b, 0o644)
			}
			sum = Sum{}
			for _, in := range ins {
				rep, _ := Validate(in)
				sum.Merge(rep.Sum)
			}
			noErrors(t, tc.runAll(ins, NodeOptions{}))
			checkSorted(t, sum, tc.outs()...)
			for i, o := range tc.outs() {
				fi, _ := os.Stat(o)
				got := fi.Size() / RecordSize
				switch {
				case part == PartitionBits && i == 0 && got != n*per:
					t.Errorf("node 0 got %d records, want all %d", got, n*per)
				case part == PartitionSample && (got < per/2 || got > 2*per):
					t.Errorf("node %d got %d records with sampled ranges, want about %d", i, got, per)
				}
			}
		})
	}
}

func TestRunDuplicateKeys(t *testing.T) {
	for _, part := range []string{PartitionBits, PartitionSample} {
		t.Run(part, func(t *testing.T) {
			tc := newTestCluster(t, 4, part)
			ins, _ := genInputs(t, tc.dir, repeat(4, 3000), GenOptions{Seed: 9})
			var sum Sum
			for i, in := range ins { // a third of the records share one of three keys
				b, _ := os.ReadFile(in)
				for r := 0; r < len(b)/RecordSize; r += 3 {
					copy(b[r*RecordSize:], fmt.Sprintf("%c-dup-key-", 'A'+(r+i)%3))
				}
				os.WriteFile(in, b, 0o644)
				rep, _ := Validate(in)
				sum.Merge(rep.Sum)
			}
			noErrors(t, tc.runAll(ins, NodeOptions{}))
			rep := checkSorted(t, sum, tc.outs()...)
			if rep.Duplicates < 3990 {
				t.Errorf("%d duplicate keys, want at least 3990", rep.Duplicates)
			}
		})
	}
}

func TestRunSpills(t *testing.T) {
	tc := newTestCluster(t, 2, PartitionBits)
	ins, sum := genInputs(t, tc.dir, repeat(2, 20000), GenOptions{Seed: 10})
	noErrors(t, tc.runAll(ins, NodeOptions{Options: Options{Mem: 300_000, TempDir: t.TempDir()}}))
	checkSorted(t, sum, tc.outs()...)
}

func TestRunPartialRecord(t *testing.T) {
	tc := newTestCluster(t, 1, PartitionBits)
	in := filepath.Join(tc.dir, "in")
	os.WriteFile(in, make([]byte, 1234), 0o644)
	err := <-tc.run(bg, 0, in, NodeOptions{})
	if !errors.Is(err, ErrPartialRecord) || !strings.Contains(err.Error(), "1234 bytes") {
		t.Fatalf("got %v, want ErrPartialRecord naming the size", err)
	}
}

// retryHandler signals when a node logs that a peer is not up yet.
type retryHandler struct {
	slog.Handler
	once sync.Once
	ch   chan struct{}
}

func (h *retryHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *retryHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "not up yet") {
		h.once.Do(func() { close(h.ch) })
	}
	return nil
}

func TestRunLatePeer(t *testing.T) {
	tc := newTestCluster(t, 3, PartitionSample)
	ins, sum := genInputs(t, tc.dir, repeat(3, 2000), GenOptions{Seed: 12})
	addr := tc.lns[2].Addr().String()
	tc.lns[2].Close() // node 2 is not up: dials to it are refused
	tc.lns[2] = nil
	h := &retryHandler{Handler: slog.DiscardHandler, ch: make(chan struct{})}
	c0 := tc.run(bg, 0, ins[0], NodeOptions{Logger: slog.New(h)})
	c1 := tc.run(bg, 1, ins[1], NodeOptions{})
	select {
	case <-h.ch:
	case err := <-c0:
		t.Fatalf("node 0 ended before node 2 started: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("node 0 never retried node 2")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("rebind %s: %v", addr, err)
	}
	c2 := tc.run(bg, 2, ins[2], NodeOptions{Listener: l})
	noErrors(t, []error{<-c0, <-c1, <-c2})
	checkSorted(t, sum, tc.outs()...)
}

func TestRunPeerNeverStarts(t *testing.T) {
	tc := newTestCluster(t, 2, PartitionBits)
	ins, _ := genInputs(t, tc.dir, repeat(2, 100), GenOptions{Seed: 13})
	addr := tc.lns[1].Addr().String()
	tc.lns[1].Close()
	tc.lns[1] = nil
	err := <-tc.run(bg, 0, ins[0], NodeOptions{DialTimeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrPeer) || !strings.Contains(err.Error(), "node 1 at "+addr+" did not answer") {
		t.Fatalf("got %v, want a dial timeout naming node 1", err)
	}
	assertNoTemp(t, tc.dir, "in.0", "in.1")
}

func TestRunConfigMismatch(t *testing.T) {
	tc := newTestCluster(t, 2, PartitionBits)
	ins, _ := genInputs(t, tc.dir, repeat(2, 100), GenOptions{Seed: 14})
	c0 := tc.run(bg, 0, ins[0], NodeOptions{})
	other := tc.cfg
	other.Partition = PartitionSample // node 1 runs another config
	ch := make(chan error, 1)
	l := tc.lns[1]
	tc.lns[1] = nil
	go func() {
		_, err := Run(bg, other, 1, Input{Path: ins[1], Length: -1}, tc.out(1), NodeOptions{Listener: l, DialTimeout: 10 * time.Second})
		ch <- err
	}()
	for i, err := range []error{<-c0, <-ch} {
		if err == nil || !strings.Contains(err.Error(), "config") {
			t.Errorf("node %d: got %v, want a config mismatch", i, err)
		}
	}
	assertNoTemp(t, tc.dir, "in.0", "in.1")
}

// TestRunPeerAborts cancels node 2 mid-run, once every connection is up
// and before it has ended its streams: the others fail naming it and
// leave no output.
func TestRunPeerAborts(t *testing.T) {
	tc := newTestCluster(t, 3, PartitionBits)
	ins, _ := genInputs(t, tc.dir, repeat(3, 3000), GenOptions{Seed: 15})
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	g := &gate{cancel: cancel, up: make([]bool, 3)}
	opt := func(i int) NodeOptions {
		return NodeOptions{Progress: gateWriter{g, i}, ProgressEvery: time.Millisecond}
	}
	o2 := opt(2)
	o2.beforeEnd = func(ctx context.Context, _ int) {
		g.mu.Lock()
		g.holding = true
		g.check()
		g.mu.Unlock()
		<-ctx.Done() // node 2 never ends its streams: it is cancelled first
	}
	c2 := tc.run(ctx, 2, ins[2], o2)
	c0 := tc.run(bg, 0, ins[0], opt(0))
	c1 := tc.run(bg, 1, ins[1], opt(1))
	if err := <-c2; !errors.Is(err, context.Canceled) {
		t.Errorf("node 2: got %v, want context.Canceled", err)
	}
	for i, err := range []error{<-c0, <-c1} {
		if !errors.Is(err, ErrPeer) || !strings.Contains(err.Error(), "node 2") {
			t.Errorf("node %d: got %v, want an error naming node 2", i, err)
		}
	}
	assertNoTemp(t, tc.dir, "in.0", "in.1", "in.2")
}

// gate cancels node 2 once every node reports all its connections up and
// node 2 holds back its End frames.
type gate struct {
	mu      sync.Mutex
	up      []bool
	holding bool
	once    sync.Once
	cancel  func()
}

func (g *gate) check() {
	if g.holding && g.up[0] && g.up[1] && g.up[2] {
		g.once.Do(g.cancel)
	}
}

type gateWriter struct {
	g *gate
	i int
}

func (w gateWriter) Write(p []byte) (int, error) {
	w.g.mu.Lock()
	defer w.g.mu.Unlock()
	if strings.Contains(string(p), "connected 4/4") {
		w.g.up[w.i] = true
	}
	w.g.check()
	return len(p), nil
}

// TestRunPeerDies has a fake node 1 that handshakes, sends two data frames
// and then drops its connections without an end frame, as a crashed
// process would: the real nodes fail naming it and leave no output.
func TestRunPeerDies(t *testing.T) {
	tc := newTestCluster(t, 3, PartitionBits)
	ins, _ := genInputs(t, tc.dir, repeat(3, 5000), GenOptions{Seed: 17})
	if err := tc.cfg.Normalize(); err != nil {
		t.Fatal(err)
	}
	fake := tc.lns[1]
	tc.lns[1] = nil
	var wg sync.WaitGroup
	defer wg.Wait()
	defer fake.Close()
	// Accept the two real nodes and swallow their streams.
	wg.Go(func() {
		for range 2 {
			c, err := fake.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				r := wire.NewReader(c)
				if typ, p, err := r.Next(); err != nil || typ != wire.TypeHello {
					return
				} else if h, _ := wire.ParseHello(p); true {
					wire.WriteFrame(c, wire.TypeAccept, wire.AppendHello(nil, wire.Hello{From: 1, To: h.From, Nodes: 3, ConfigHash: tc.cfg.Hash()}))
				}
				for {
					if _, _, err := r.Next(); err != nil {
						return
					}
				}
			})
		}
	})
	cfg := tc.cfg
	cfg.Normalize()
	c0 := tc.run(bg, 0, ins[0], NodeOptions{})
	c2 := tc.run(bg, 2, ins[2], NodeOptions{})
	// Dial both real nodes as node 1, send part of a stream, then die.
	for _, j := range []int{0, 2} {
		wg.Go(func() {
			c, err := net.Dial("tcp", cfg.Servers[j].Addr())
			if err != nil {
				t.Logf("node %d is gone already (the other one failed first): %v", j, err)
				return
			}
			defer c.Close()
			wire.WriteFrame(c, wire.TypeHello, wire.AppendHello(nil, wire.Hello{From: 1, To: uint16(j), Nodes: 3, ConfigHash: cfg.Hash()}))
			if typ, _, err := wire.NewReader(c).Next(); err != nil || typ != wire.TypeAccept {
				t.Logf("node %d did not accept the fake (it already failed): %v %v", j, typ, err)
				return
			}
			recs := make([]byte, 50*RecordSize)
			wire.WriteFrame(c, wire.TypeData, recs)
			wire.WriteFrame(c, wire.TypeData, recs)
		})
	}
	// Both fail; at least one names node 1's truncated stream (the other
	// may instead see the first one fail before node 1's stream reaches it).
	named := false
	for i, err := range []error{<-c0, <-c2} {
		if !errors.Is(err, ErrPeer) {
			t.Errorf("node %d: got %v, want ErrPeer", 2*i, err)
		}
		named = named || err != nil && strings.Contains(err.Error(), "from node 1") && strings.Contains(err.Error(), "after 100 records")
	}
	if !named {
		t.Errorf("no node reported node 1's truncated stream")
	}
	assertNoTemp(t, tc.dir, "in.0", "in.1", "in.2")
}

// TestRunStrayConnections connects a silent client and one that speaks
// another protocol before the peers: both are dropped and the sort goes on.
func TestRunStrayConnections(t *testing.T) {
	tc := newTestCluster(t, 2, PartitionBits)
	ins, sum := genInputs(t, tc.dir, repeat(2, 3000), GenOptions{Seed: 18})
	for _, greeting := range []string{"", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"} {
		c, err := net.Dial("tcp", tc.lns[0].Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte(greeting))
	}
	noErrors(t, tc.runAll(ins, NodeOptions{}))
	checkSorted(t, sum, tc.outs()...)
}

// TestRunPeerHangs has a fake node 1 that handshakes and then goes silent
// (as a SIGSTOPped process would): the real node fails after IdleTimeout.
func TestRunPeerHangs(t *testing.T) {
	tc := newTestCluster(t, 2, PartitionBits)
	if err := tc.cfg.Normalize(); err != nil {
		t.Fatal(err)
	}
	ins, _ := genInputs(t, tc.dir, repeat(2, 100), GenOptions{Seed: 19})
	fake := tc.lns[1]
	tc.lns[1] = nil
	defer fake.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	quit := make(chan struct{})
	defer close(quit)
	wg.Go(func() { // accept node 0's stream and never read it
		c, err := fake.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := wire.NewReader(c)
		if _, p, err := r.Next(); err == nil {
			h, _ := wire.ParseHello(p)
			wire.WriteFrame(c, wire.TypeAccept, wire.AppendHello(nil, wire.Hello{From: 1, To: h.From, Nodes: 2, ConfigHash: tc.cfg.Hash()}))
		}
		<-quit
	})
	c0 := tc.run(bg, 0, ins[0], NodeOptions{IdleTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", tc.cfg.Servers[0].Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wire.WriteFrame(c, wire.TypeHello, wire.AppendHello(nil, wire.Hello{From: 1, To: 0, Nodes: 2, ConfigHash: tc.cfg.Hash()}))
	err = <-c0
	if !errors.Is(err, ErrPeer) || !strings.Contains(err.Error(), "node 1") || !strings.Contains(err.Error(), "stopped or hung") {
		t.Fatalf("got %v, want an idle peer error naming node 1", err)
	}
	assertNoTemp(t, tc.dir, "in.0", "in.1")
}

// TestRunPeerBadInput: node 1's input is not whole records; node 0, already
// up, fails at once with node 1's reason rather than a dial timeout.
func TestRunPeerBadInput(t *testing.T) {
	tc := newTestCluster(t, 2, PartitionBits)
	ins, _ := genInputs(t, tc.dir, repeat(2, 100), GenOptions{Seed: 20})
	os.WriteFile(ins[1], make([]byte, 150), 0o644)
	tc.lns[1].Close() // node 1 fails before it listens
	tc.lns[1] = nil
	c0 := tc.run(bg, 0, ins[0], NodeOptions{DialTimeout: time.Minute})
	err1 := <-tc.run(bg, 1, ins[1], NodeOptions{})
	if !errors.Is(err1, ErrPartialRecord) {
		t.Errorf("node 1: got %v, want ErrPartialRecord", err1)
	}
	err0 := <-c0
	if !errors.Is(err0, ErrPeer) || !strings.Contains(err0.Error(), "node 1") || !strings.Contains(err0.Error(), "not a multiple of 100") {
		t.Errorf("node 0: got %v, want node 1's reason", err0)
	}
	assertNoTemp(t, tc.dir, "in.0", "in.1")
}
