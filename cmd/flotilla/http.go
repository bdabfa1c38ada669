package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/flotilla-dev/flotilla/tritonhttp"
)

func newHTTPCmd() *cobra.Command {
	return newGroup("http", "TritonHTTP: a static file server on raw TCP",
		`  flotilla http serve --addr 127.0.0.1:8080 --docroot ./site
  flotilla http serve --addr 127.0.0.1:8080 --vhosts virtual_hosts.yaml`,
		newHTTPServeCmd())
}

type httpOpts struct {
	addr, vhosts, docroot, defaultHost, accessLog, admin string
	lim                                                  tritonhttp.Limits
}

func newHTTPServeCmd() *cobra.Command {
	var o httpOpts
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve static sites over HTTP/1.1",
		Long: `Serves static files over HTTP/1.1 (GET and HEAD, keep-alive, pipelining,
ranges, If-Modified-Since) from one document root or from virtual hosts
chosen by the Host header. The virtual hosts file is YAML:

  virtual_hosts:
    - hostName: website1
      docRoot: docroot_dirs/website1     # relative to this file
    - hostName: website2
      docRoot: docroot_dirs/website2
  default_host: website1                 # optional: serves unknown hosts

--docroot alone serves one site for every host; with --vhosts it serves the
hosts the file does not list. SIGINT or SIGTERM stops the server gracefully.
Protocol choices and limits: docs/tritonhttp.md.`,
		Example: `  flotilla http serve --addr 127.0.0.1:8080 --docroot ./site
  flotilla http serve --vhosts virtual_hosts.yaml --access-log -
  flotilla http serve --vhosts virtual_hosts.yaml --docroot ./fallback --idle-timeout 10s`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, closeLog, err := o.config(cmd)
			if err != nil {
				return err
			}
			defer closeLog()
			return runHTTP(cmd, o.addr, o.admin, cfg)
		},
	}
	f := cmd.Flags()
	d := tritonhttp.DefaultLimits
	f.StringVar(&o.addr, "addr", "127.0.0.1:8080", "address to listen on")
	f.StringVar(&o.vhosts, "vhosts", "", "virtual hosts YAML file")
	f.StringVar(&o.docroot, "docroot", "", "document root serving every host not in --vhosts")
	f.StringVar(&o.defaultHost, "default-host", "", "host from --vhosts that serves unknown hosts (overrides default_host)")
	f.StringVar(&o.accessLog, "access-log", "", "write a combined-format access log to this file (- for stdout); off by default")
	f.StringVar(&o.admin, "admin", "", "address of the admin HTTP endpoint (/metrics, /status, /debug/pprof); off by default")
	f.IntVar(&o.lim.MaxRequestLine, "max-request-line", d.MaxRequestLine, "longest request line in bytes (414 above)")
	f.IntVar(&o.lim.MaxHeaderBytes, "max-header-bytes", d.MaxHeaderBytes, "most header bytes per request (431 above)")
	f.IntVar(&o.lim.MaxHeaders, "max-headers", d.MaxHeaders, "most header fields per request (431 above)")
	f.IntVar(&o.lim.MaxRequestsPerConn, "max-requests-per-conn", d.MaxRequestsPerConn, "requests per connection before it is closed")
	f.IntVar(&o.lim.MaxConns, "max-conns", d.MaxConns, "most open connections (503 above)")
	f.DurationVar(&o.lim.IdleTimeout, "idle-timeout", d.IdleTimeout, "close a connection idle this long")
	f.DurationVar(&o.lim.HeaderTimeout, "header-timeout", d.HeaderTimeout, "time allowed for a request's header once it has begun (400 after)")
	f.DurationVar(&o.lim.WriteTimeout, "write-timeout", d.WriteTimeout, "time allowed for each write to a client")
	f.DurationVar(&o.lim.ShutdownTimeout, "shutdown-timeout", d.ShutdownTimeout, "grace period for busy connections on shutdown")
	return cmd
}

// config builds the server configuration from the flags.
func (o *httpOpts) config(cmd *cobra.Command) (tritonhttp.Config, func(), error) {
	noop := func() {}
	if o.vhosts == "" && o.docroot == "" {
		return tritonhttp.Config{}, noop, usageError{errors.New("give --vhosts FILE or --docroot DIR (see --help)")}
	}
	vh, err := tritonhttp.BuildVirtualHosts(o.vhosts, o.docroot, o.defaultHost)
	if err != nil {
		return tritonhttp.Config{}, noop, err
	}
	cfg := tritonhttp.Config{
		Hosts:  vh,
		Limits: o.lim,
		Logger: slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)),
	}
	switch o.accessLog {
	case "":
		return cfg, noop, nil
	case "-":
		cfg.AccessLog = cmd.OutOrStdout()
		return cfg, noop, nil
	}
	f, err := os.OpenFile(o.accessLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return tritonhttp.Config{}, noop, fmt.Errorf("access log: %w", err)
	}
	cfg.AccessLog = f
	return cfg, func() { f.Close() }, nil
}

// runHTTP serves until SIGINT or SIGTERM.
func runHTTP(cmd *cobra.Command, addr, adminAddr string, cfg tritonhttp.Config) error {
	srv, err := tritonhttp.NewServer(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	adminDone := make(chan error, 1)
	if adminAddr == "" {
		adminDone <- nil
	} else {
		aln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", adminAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("admin listen: %w", err)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "flotilla http: admin endpoint on http://%s\n", aln.Addr())
		go func() { adminDone <- serveHTTPAdmin(ctx, aln, srv) }()
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "flotilla http: serving %d host(s) on http://%s\n", len(cfg.Hosts.Hosts), ln.Addr())
	err = srv.Serve(ctx, ln)
	stop() // a listener error ends the admin endpoint too
	return errors.Join(err, <-adminDone)
}

// serveHTTPAdmin serves /metrics, /status and /debug/pprof for srv until
// ctx ends. It uses net/http: the admin port is not the file server.
func serveHTTPAdmin(ctx context.Context, ln net.Listener, srv *tritonhttp.Server) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	stat := func(f func(tritonhttp.Stats) float64) func() float64 { return func() float64 { return f(srv.Stats()) } }
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tritonhttp_open_connections", Help: "Connections open now."},
			stat(func(s tritonhttp.Stats) float64 { return float64(s.OpenConns) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tritonhttp_accepted_connections_total", Help: "Connections accepted and served."},
			stat(func(s tritonhttp.Stats) float64 { return float64(s.AcceptedConns) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tritonhttp_rejected_connections_total", Help: "Connections answered 503 over the connection cap."},
			stat(func(s tritonhttp.Stats) float64 { return float64(s.RejectedConns) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tritonhttp_body_bytes_total", Help: "Response body bytes sent."},
			stat(func(s tritonhttp.Stats) float64 { return float64(s.BodyBytes) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tritonhttp_cached_files", Help: "Entries in the file cache."},
			stat(func(s tritonhttp.Stats) float64 { return float64(s.CachedFiles) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tritonhttp_cached_bytes", Help: "File bytes held in the cache."},
			stat(func(s tritonhttp.Stats) float64 { return float64(s.CachedBytes) })),
	)
	for class := 1; class <= 5; class++ {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tritonhttp_responses_total", Help: "Responses sent, by status class.",
			ConstLabels: prometheus.Labels{"class": fmt.Sprintf("%dxx", class)},
		}, stat(func(s tritonhttp.Stats) float64 { return float64(s.Responses[class]) })))
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(srv.Stats())
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	}()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin: %w", err)
	}
	return nil
}
