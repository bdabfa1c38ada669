package tritonhttp

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config configures a Server.
type Config struct {
	// Hosts are the sites served, chosen by the Host header.
	Hosts VirtualHosts
	// Limits bound each client; zero fields take DefaultLimits.
	Limits Limits
	// AccessLog, when set, receives one line per response in the combined
	// log format. Writes are serialized.
	AccessLog io.Writer
	// Logger receives accept errors; nil discards them.
	Logger *slog.Logger
	// Now is the clock for Date values and cache staleness; nil means
	// time.Now. Deadlines on connections always use real time.
	Now func() time.Time
}

// Server serves static files over HTTP/1.1. Serve is called once: its
// shutdown ends every connection of the server.
type Server struct {
	lim    Limits
	router *router
	cache  *fileCache
	date   dateCache
	access *accessLog // nil when off
	log    *slog.Logger

	stats   counters
	closing atomic.Bool  // set once shutdown begins; never cleared
	open    atomic.Int64 // connections open, for the MaxConns cap
	mu      sync.Mutex
	conns   map[*conn]struct{} // guarded by mu
	wg      sync.WaitGroup     // one per connection goroutine
}

// NewServer validates cfg and returns a server for it.
func NewServer(cfg Config) (*Server, error) {
	rt, err := newRouter(cfg.Hosts)
	if err != nil {
		return nil, err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		lim:    cfg.Limits.withDefaults(),
		router: rt,
		cache:  newFileCache(now),
		log:    log,
		conns:  make(map[*conn]struct{}),
	}
	s.date.now = now
	if cfg.AccessLog != nil {
		s.access = &accessLog{w: cfg.AccessLog, now: now}
	}
	return s, nil
}

// ListenAndServe listens on the TCP address addr and calls Serve.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve accepts connections on ln until ctx ends, then shuts down
// gracefully: the listener closes, idle connections close at once, busy ones
// finish the response in hand, and those still open after
// Limits.ShutdownTimeout are closed. It returns nil after a shutdown caused
// by ctx, or the listener's error, and in both cases only once every
// connection goroutine has ended.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				s.shutdown()
				return nil
			}
			if !temporary(err) {
				s.shutdown()
				return err
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("tritonhttp: accept", "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			continue
		}
		backoff = 0
		if s.open.Add(1) > int64(s.lim.MaxConns) {
			s.open.Add(-1)
			s.stats.rejected.Add(1)
			s.reject(nc)
			continue
		}
		s.stats.accepted.Add(1)
		c := s.newConn(nc)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.serve()
			s.release(c)
		}()
	}
}

// temporary reports whether an accept error may clear by itself (out of
// file descriptors, an aborted handshake).
func temporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS)
}

var connPool sync.Pool

func (s *Server) newConn(nc net.Conn) *conn {
	c, _ := connPool.Get().(*conn)
	if c == nil {
		c = &conn{br: bufio.NewReaderSize(nil, readBufferSize)}
	}
	c.srv, c.nc = s, nc
	c.br.Reset(nc)
	c.state.Store(stateActive)
	if s.access != nil {
		c.remote = remoteHost(nc)
	}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	return c
}

// release closes a finished connection and returns its buffers to the pool.
func (s *Server) release(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.nc.Close()
	s.open.Add(-1)
	c.br.Reset(nil)
	c.srv, c.nc, c.rdl, c.wdl, c.remote = nil, nil, time.Time{}, time.Time{}, ""
	c.out = c.out[:0]
	if cap(c.out) > 2*flushThreshold+maxCachedFile || cap(c.req.arena) > 64<<10 {
		return // do not keep what one odd client grew
	}
	connPool.Put(c)
}

// reject answers a connection over the cap with 503 and closes it.
func (s *Server) reject(nc net.Conn) {
	rs := response{status: 503, contentLength: 0, close: true}
	nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	nc.Write(appendHead(nil, &rs, s.date.get()))
	nc.Close()
}

// shutdown ends every connection: idle ones now, busy ones after their
// response or at the grace deadline, and waits for their goroutines.
func (s *Server) shutdown() {
	s.closing.Store(true)
	past := time.Unix(1, 0)
	s.mu.Lock()
	for c := range s.conns {
		if c.state.Load() == stateIdle {
			c.nc.SetReadDeadline(past)
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(s.lim.ShutdownTimeout)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	s.mu.Lock()
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	<-done
}
