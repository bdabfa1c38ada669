package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flotilla-dev/flotilla/node"
	"github.com/flotilla-dev/flotilla/transport"
)

// DefaultNamespace prefixes metric names when Config.Namespace is empty.
const DefaultNamespace = "flotilla"

// ShutdownTimeout is how long Serve waits for open requests to finish after
// its context is cancelled before it closes their connections.
const ShutdownTimeout = 3 * time.Second

// ErrInvalidConfig is wrapped by every error Handler returns for a bad
// Config.
var ErrInvalidConfig = errors.New("admin: invalid config")

// Config configures the admin handler.
type Config struct {
	// Node is the Raft member whose metrics and status are exported.
	// Required. The handler reads it on every request and never stops it;
	// after the node stops, /status and /metrics show its last state.
	Node *node.Node
	// Status, if set, returns extra JSON-marshalable fields that /status
	// shows under the key "service" (for example a KV store's key count
	// and hash). It is called once per /status request, from the
	// request's goroutine, so it must be safe for concurrent use.
	Status func() any
	// Namespace prefixes metric names; default DefaultNamespace. It must
	// be a valid Prometheus name: ASCII letters, digits and underscores,
	// not starting with a digit.
	Namespace string
	// Faults, if set, is served at /debug/faults to cut the member's peer
	// traffic (faults.go). Only for members started with
	// --fault-injection, never in production.
	Faults *transport.Faults
}

// index is the body of "/".
const index = `flotilla admin endpoint

/metrics        Prometheus metrics (text exposition format)
/status         node status as JSON
/debug/pprof/   Go profiler (net/http/pprof)
`

// Handler returns an http.Handler serving /metrics, /status, /debug/pprof/
// (all of net/http/pprof's handlers) and a plain-text index at "/" listing
// them, on a private mux: http.DefaultServeMux is never touched. Unknown
// paths answer 404; /metrics, /status and / answer GET and HEAD, and other
// methods with 405 and an Allow header. It returns an error wrapping
// ErrInvalidConfig if cfg has no Node or an invalid Namespace.
func Handler(cfg Config) (http.Handler, error) {
	if cfg.Node == nil {
		return nil, fmt.Errorf("%w: Node is required", ErrInvalidConfig)
	}
	ns := cfg.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	if !validName(ns) {
		return nil, fmt.Errorf("%w: Namespace %q is not a Prometheus name (use letters, digits and underscores, not starting with a digit)", ErrInvalidConfig, ns)
	}
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newCollector(ns, cfg.Node),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("admin: registering metrics: %w", err)
		}
	}

	mux := http.NewServeMux()
	// A "GET" pattern also matches HEAD, and the mux answers other methods
	// on the same path with 405 and an Allow header.
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn),
	}))
	mux.Handle("GET /status", statusHandler{n: cfg.Node, service: cfg.Status})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	if cfg.Faults != nil {
		registerFaults(mux, cfg.Faults, cfg.Node)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, index)
	})
	return mux, nil
}

// validName reports whether s is a legacy Prometheus metric name: the form
// every scraper accepts without quoting.
func validName(s string) bool {
	for i, r := range s {
		switch {
		case r == '_', 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z':
		case '0' <= r && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}

// Serve serves h on ln until ctx is cancelled, then shuts the server down
// gracefully and returns nil. Shutting down stops accepting connections,
// cancels the contexts of requests in flight (so that long pprof profiles
// and traces end) and waits up to ShutdownTimeout for them to finish before
// closing their connections. Serve takes ownership of ln and closes it. It
// returns any other error from http.Server.Serve, such as ln failing.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin: serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close() // the deadline passed: drop what is still open
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin: serving on %s: %w", ln.Addr(), err)
	}
	return nil
}
