package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/flotilla-dev/flotilla/kv/kvclient"
)

// benchKVOpts are the flags of flotilla bench kv, named like etcd's
// benchmark tool so that one load shape reads the same for both.
type benchKVOpts struct {
	co                 clientOpts
	clients, conns     int
	keySize, valSize   int
	keySpace           int
	total              int
	duration, warmup   time.Duration
	sequential         bool
	consistency        string
	rate               float64
	readRatio          float64
	timeout            time.Duration
	asJSON, noPopulate bool
	cpuProfile         string
}

func newBenchKVCmd() *cobra.Command {
	var o benchKVOpts
	cmd := &cobra.Command{
		Use:   "kv put|get|mixed",
		Short: "Load a running KV cluster: puts, gets or a mix, with latency percentiles",
		Long: `Drives a running flotilla KV cluster (flotilla up, or flotilla kv serve
members) with --clients concurrent requesters spread over --conns client
connections, in the shape of etcd's benchmark tool:

  put    writes --val-size byte values to --key-size byte keys
  get    reads keys (linearizable by default, --consistency s for
         serializable); the keys are written once before the measurement
  mixed  each request is a get with probability --read-ratio, else a put

Keys are drawn at random from --key-space-size keys (or in turn with
--sequential-keys); a key is the key's number, big-endian, padded to
--key-size bytes. The run stops after --total requests or, if set, after
--duration. --rate caps the requests per second of all clients together
(0: as fast as the cluster answers).

Latencies go into a log-linear histogram (under 1% error); the result has
throughput, errors and p50/p90/p99/p99.9, as a table or with --json.`,
		Example: `  flotilla up --data-dir /tmp/fl &
  flotilla bench kv put --data-dir /tmp/fl --clients 64 --conns 8 --total 100000
  flotilla bench kv get --endpoints 127.0.0.1:7101 --clients 1 --total 10000 --consistency l
  flotilla bench kv mixed --read-ratio 0.9 --clients 256 --conns 16 --duration 10s --json`,
		Args:      exactArgs(1),
		ValidArgs: []string{"put", "get", "mixed"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(args[0]); err != nil {
				return err
			}
			eps, err := o.co.resolveEndpoints()
			if err != nil {
				return err
			}
			res, err := benchKV(cmd.Context(), cmd.ErrOrStderr(), args[0], eps, o)
			if err != nil {
				return err
			}
			if o.asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			res.print(cmd.OutOrStdout())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.co.endpoints, "endpoints", "", "comma-separated client addresses of members (default: $FLOTILLA_ENDPOINTS, else the endpoints file of a local flotilla up cluster)")
	f.StringVar(&o.co.dataDir, "data-dir", defaultUpDir, "the local flotilla up cluster whose endpoints file is used when no endpoints are given")
	f.IntVar(&o.clients, "clients", 1, "concurrent requesters, each with one request in flight")
	f.IntVar(&o.conns, "conns", 1, "client connections (kvclient.Clients) the requesters share, requester i using connection i mod conns")
	f.IntVar(&o.keySize, "key-size", 8, "bytes per key (at least 8)")
	f.IntVar(&o.valSize, "val-size", 256, "bytes per value written")
	f.IntVar(&o.keySpace, "key-space-size", 1, "number of distinct keys")
	f.IntVar(&o.total, "total", 10000, "requests to send (ignored with --duration)")
	f.DurationVar(&o.duration, "duration", 0, "measured time; overrides --total")
	f.DurationVar(&o.warmup, "warmup", 0, "unmeasured load before the measurement")
	f.BoolVar(&o.sequential, "sequential-keys", false, "use keys in turn instead of at random")
	f.StringVar(&o.consistency, "consistency", "l", "read consistency: l (linearizable) or s (serializable)")
	f.Float64Var(&o.rate, "rate", 0, "requests per second of all clients together; 0 for no limit")
	f.Float64Var(&o.readRatio, "read-ratio", 0.5, "mixed: the fraction of requests that are gets")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "bound on one request, retries included")
	f.BoolVar(&o.noPopulate, "no-populate", false, "get, mixed: do not write the keys before the measurement")
	f.BoolVar(&o.asJSON, "json", false, "print the result as JSON")
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the load generator (the measured run) to this file")
	return cmd
}

func (o *benchKVOpts) check(workload string) error {
	switch {
	case workload != "put" && workload != "get" && workload != "mixed":
		return usageError{fmt.Errorf("workload %q: want put, get or mixed", workload)}
	case o.clients < 1:
		return usageError{fmt.Errorf("--clients must be at least 1, got %d", o.clients)}
	case o.conns < 1 || o.conns > o.clients:
		return usageError{fmt.Errorf("--conns must be 1 to --clients (%d), got %d", o.clients, o.conns)}
	case o.keySize < 8 || o.keySize > 4096:
		return usageError{fmt.Errorf("--key-size must be 8 to 4096 bytes, got %d", o.keySize)}
	case o.valSize < 0 || o.valSize > 1<<20:
		return usageError{fmt.Errorf("--val-size must be 0 to 1048576 bytes, got %d", o.valSize)}
	case o.keySpace < 1:
		return usageError{fmt.Errorf("--key-space-size must be at least 1, got %d", o.keySpace)}
	case o.duration < 0 || (o.duration == 0 && o.total < 1):
		return usageError{errors.New("give a positive --total or --duration")}
	case o.consistency != "l" && o.consistency != "s":
		return usageError{fmt.Errorf("--consistency %q: want l or s", o.consistency)}
	case o.rate < 0:
		return usageError{fmt.Errorf("--rate must not be negative, got %v", o.rate)}
	case o.readRatio < 0 || o.readRatio > 1:
		return usageError{fmt.Errorf("--read-ratio must be 0 to 1, got %v", o.readRatio)}
	case o.timeout <= 0:
		return usageError{fmt.Errorf("--timeout must be positive, got %v", o.timeout)}
	}
	return nil
}

// benchKVResult is one run's outcome. Latencies are in microseconds.
type benchKVResult struct {
	Workload    string  `json:"workload"`
	Clients     int     `json:"clients"`
	Conns       int     `json:"conns"`
	KeySize     int     `json:"key_size"`
	ValSize     int     `json:"val_size"`
	KeySpace    int     `json:"key_space_size"`
	Consistency string  `json:"consistency"`
	Seconds     float64 `json:"seconds"`
	Requests    uint64  `json:"requests"`
	Errors      uint64  `json:"errors"`
	PerSecond   float64 `json:"requests_per_second"`
	MeanMicros  float64 `json:"mean_us"`
	P50Micros   float64 `json:"p50_us"`
	P90Micros   float64 `json:"p90_us"`
	P99Micros   float64 `json:"p99_us"`
	P999Micros  float64 `json:"p999_us"`
	MaxMicros   float64 `json:"max_us"`
	FirstError  string  `json:"first_error,omitempty"`
}

func (r benchKVResult) print(w io.Writer) {
	fmt.Fprintf(w, "workload     %s (clients %d, conns %d, key %d B, value %d B, key space %d, consistency %s)\n",
		r.Workload, r.Clients, r.Conns, r.KeySize, r.ValSize, r.KeySpace, r.Consistency)
	fmt.Fprintf(w, "requests     %d in %.2f s (%d errors)\n", r.Requests, r.Seconds, r.Errors)
	if r.FirstError != "" {
		fmt.Fprintf(w, "first error  %s\n", r.FirstError)
	}
	fmt.Fprintf(w, "throughput   %.1f requests/s\n", r.PerSecond)
	fmt.Fprintf(w, "\n%-8s %10s\n", "latency", "ms")
	for _, row := range []struct {
		name string
		us   float64
	}{{"mean", r.MeanMicros}, {"p50", r.P50Micros}, {"p90", r.P90Micros}, {"p99", r.P99Micros}, {"p99.9", r.P999Micros}, {"max", r.MaxMicros}} {
		fmt.Fprintf(w, "%-8s %10.3f\n", row.name, row.us/1000)
	}
}

// benchKV runs one workload against eps and summarizes it.
func benchKV(ctx context.Context, progress io.Writer, workload string, eps []string, o benchKVOpts) (benchKVResult, error) {
	conns := make([]*kvclient.Client, o.conns)
	for i := range conns {
		c, err := kvclient.New(kvclient.Config{Endpoints: eps, AttemptTimeout: min(3*time.Second, o.timeout)})
		if err != nil {
			return benchKVResult{}, err
		}
		defer c.Close()
		conns[i] = c
	}
	value := make([]byte, o.valSize)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	if workload != "put" && !o.noPopulate {
		if err := populateKeys(ctx, conns, o, value); err != nil {
			return benchKVResult{}, err
		}
	}
	var readOpts []kvclient.ReadOption
	if o.consistency == "s" {
		readOpts = append(readOpts, kvclient.Serializable())
	}
	l := &kvLoad{o: o, conns: conns, value: value, readOpts: readOpts, workload: workload}
	if o.warmup > 0 {
		l.run(ctx, o.warmup, 0, nil)
	}
	h := newLatencyHist()
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return benchKVResult{}, fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return benchKVResult{}, fmt.Errorf("--cpuprofile: %w", err)
		}
	}
	stop := startProgress(progress, l)
	start := time.Now()
	l.run(ctx, o.duration, o.total, h)
	elapsed := time.Since(start)
	stop()
	if o.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	res := benchKVResult{
		Workload: workload, Clients: o.clients, Conns: o.conns, KeySize: o.keySize, ValSize: o.valSize,
		KeySpace: o.keySpace, Consistency: o.consistency, Seconds: elapsed.Seconds(),
		Requests: h.count, Errors: l.errs.Load(), PerSecond: float64(h.count) / elapsed.Seconds(),
		MeanMicros: h.mean(), P50Micros: h.quantile(0.50), P90Micros: h.quantile(0.90),
		P99Micros: h.quantile(0.99), P999Micros: h.quantile(0.999), MaxMicros: float64(h.max),
	}
	if e := l.firstErr.Load(); e != nil {
		res.FirstError = (*e).Error()
	}
	if h.count == 0 && res.FirstError != "" {
		return res, fmt.Errorf("no request succeeded: %s", res.FirstError)
	}
	return res, nil
}

// populateKeys writes every key of the key space once (at most 100,000),
// so that gets find a value.
func populateKeys(ctx context.Context, conns []*kvclient.Client, o benchKVOpts, value []byte) error {
	n := min(o.keySpace, 100_000)
	var next atomic.Int64
	var first atomic.Pointer[error]
	var wg sync.WaitGroup
	for w := range min(o.clients, 64) {
		wg.Go(func() {
			key := make([]byte, o.keySize)
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				putKey(key, uint64(i))
				cctx, cancel := context.WithTimeout(ctx, o.timeout)
				_, err := conns[w%len(conns)].Put(cctx, key, value)
				cancel()
				if err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	if e := first.Load(); e != nil {
		return fmt.Errorf("writing the keys before the measurement: %w", clientError(*e))
	}
	return nil
}

// putKey writes key number i into key: big-endian in the first 8 bytes,
// the rest zero.
func putKey(key []byte, i uint64) { binary.BigEndian.PutUint64(key, i) }

// kvLoad is the load of one workload; run may be called more than once.
type kvLoad struct {
	o        benchKVOpts
	conns    []*kvclient.Client
	value    []byte
	readOpts []kvclient.ReadOption
	workload string

	done     atomic.Uint64 // requests answered (successes and errors) in this run
	errs     atomic.Uint64 // errors in the measured run
	firstErr atomic.Pointer[error]
}

// run drives the load for d (if positive) or until total requests were
// sent, recording latencies into h (nil for a warmup).
func (l *kvLoad) run(ctx context.Context, d time.Duration, total int, h *latencyHist) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if d > 0 {
		total = math.MaxInt
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeout(ctx, d)
		defer c2()
	}
	l.done.Store(0)
	var issued, seq atomic.Int64
	start := time.Now()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range l.o.clients {
		wg.Go(func() {
			mine := newLatencyHist()
			rng := rand.New(rand.NewPCG(uint64(w)+1, uint64(time.Now().UnixNano())))
			key := make([]byte, l.o.keySize)
			cl := l.conns[w%len(l.conns)]
			for ctx.Err() == nil {
				n := issued.Add(1)
				if n > int64(total) {
					break
				}
				if l.o.rate > 0 && !waitTurn(ctx, start, n-1, l.o.rate) {
					break
				}
				if l.o.sequential {
					putKey(key, uint64(seq.Add(1)-1)%uint64(l.o.keySpace))
				} else {
					putKey(key, rng.Uint64N(uint64(l.o.keySpace)))
				}
				t0 := time.Now()
				err := l.one(ctx, cl, key, rng)
				lat := time.Since(t0)
				l.done.Add(1)
				if err != nil {
					if ctx.Err() != nil && d > 0 {
						break // the run ended mid-request: not an error of the cluster
					}
					if h != nil {
						l.errs.Add(1)
						l.firstErr.CompareAndSwap(nil, &err)
					}
					continue
				}
				mine.record(lat)
			}
			if h != nil {
				mu.Lock()
				h.merge(mine)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// one sends one request of the workload.
func (l *kvLoad) one(ctx context.Context, cl *kvclient.Client, key []byte, rng *rand.Rand) error {
	ctx, cancel := context.WithTimeout(ctx, l.o.timeout)
	defer cancel()
	read := l.workload == "get" || (l.workload == "mixed" && rng.Float64() < l.o.readRatio)
	if read {
		_, _, err := cl.Get(ctx, key, l.readOpts...)
		return err
	}
	_, err := cl.Put(ctx, key, l.value)
	return err
}

// waitTurn sleeps until request n (from 0) is due at rate requests per
// second after start; false if ctx ended first.
func waitTurn(ctx context.Context, start time.Time, n int64, rate float64) bool {
	due := start.Add(time.Duration(float64(n) / rate * float64(time.Second)))
	wait := time.Until(due)
	if wait <= 0 {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// startProgress prints the requests answered so far every second to w,
// overwriting the line, until the returned function is called.
func startProgress(w io.Writer, l *kvLoad) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
				fmt.Fprintf(w, "\r%d requests", l.done.Load())
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// latencyHist is a log-linear histogram of microsecond latencies: values
// below 2^histSubBits fall into exact buckets, larger values into
// 2^histSubBits buckets per power of two, so a recorded value is off by
// less than 1/2^histSubBits (0.8%).
type latencyHist struct {
	buckets  []uint64
	count    uint64
	sum, max uint64
}

const histSubBits = 7

func newLatencyHist() *latencyHist {
	return &latencyHist{buckets: make([]uint64, (64-histSubBits+1)<<histSubBits)}
}

// histBucket is the bucket of v microseconds.
func histBucket(v uint64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	exp := bits.Len64(v) - histSubBits // ≥ 1: the bits dropped, plus one
	return exp<<histSubBits + int(v>>(exp-1)) - 1<<histSubBits
}

// histLow is the smallest value of bucket b.
func histLow(b int) uint64 {
	if b < 1<<histSubBits {
		return uint64(b)
	}
	exp := b >> histSubBits
	return (uint64(b&(1<<histSubBits-1)) + 1<<histSubBits) << (exp - 1)
}

func (h *latencyHist) record(d time.Duration) {
	v := uint64(max(0, d.Microseconds()))
	h.buckets[histBucket(v)]++
	h.count++
	h.sum += v
	h.max = max(h.max, v)
}

func (h *latencyHist) merge(o *latencyHist) {
	for i, n := range o.buckets {
		h.buckets[i] += n
	}
	h.count += o.count
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

func (h *latencyHist) mean() float64 {
	if h.count == 0 {
		return 0
	}
	return float64(h.sum) / float64(h.count)
}

// quantile is the value at or below which a fraction q of the recorded
// values lie: the middle of that value's bucket.
func (h *latencyHist) quantile(q float64) float64 {
	if h.count == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.count)))
	rank = max(1, rank)
	var seen uint64
	for b, n := range h.buckets {
		seen += n
		if seen >= rank {
			lo, hi := histLow(b), histLow(b+1)
			return min(float64(h.max), (float64(lo)+float64(hi-1))/2)
		}
	}
	return float64(h.max)
}
