// Package kvclient is the Go client of the flotilla KV API. A Client takes
// the members' client addresses, finds the leader, follows redirects,
// retries what is safe to retry, and honours contexts.
//
// Every write runs under an exactly-once session: the Client keeps a pool
// of sessions (a random client ID and a sequence number each), uses one
// per write in flight and retries a write with the same sequence number,
// so a write the cluster applied before a timeout or a leader change is
// not applied again.
//
//	c, err := kvclient.New(kvclient.Config{Endpoints: []string{"127.0.0.1:7101", "127.0.0.1:7102"}})
//	defer c.Close()
//	_, err = c.Put(ctx, []byte("greeting"), []byte("hello"))
//	kv, found, err := c.Get(ctx, []byte("greeting"))
package kvclient

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/proto/kvpb"
)

// Config configures a Client.
type Config struct {
	// Endpoints are client addresses of members (host:port); at least one.
	// Leaders named in redirects are added as they are learned.
	Endpoints []string
	// AttemptTimeout bounds one attempt on one member, so that a member
	// that stopped answering (paused, partitioned) is abandoned for the
	// next one. Default 3 s; the caller's context bounds the whole call.
	AttemptTimeout time.Duration
	// MaxBackoff bounds the wait between rounds of attempts when no member
	// could serve the request (an election). Default 500 ms.
	MaxBackoff time.Duration
}

// endpointError is a failure to set up a connection to an endpoint (a
// malformed address): retrying does not help.
type endpointError struct{ err error }

func (e *endpointError) Error() string { return e.err.Error() }
func (e *endpointError) Unwrap() error { return e.err }

var errClosed = errors.New("kvclient: client is closed")

// ErrNoEndpoints is returned by New for a Config without endpoints.
var ErrNoEndpoints = errors.New("kvclient: no endpoints given (use --endpoints or FLOTILLA_ENDPOINTS)")

// Client is a KV client; safe for concurrent use. Close it when done.
type Client struct {
	cfg Config

	mu        sync.Mutex
	endpoints []string // known members; leader hints are appended
	conns     map[string]*grpc.ClientConn
	leader    string // last member that served a leader-only request
	next      int    // round-robin position when no leader is known
	sessions  []*session
	closed    bool
}

// session is one exactly-once session: used by one write at a time.
type session struct {
	id, seq uint64
}

// New returns a Client for the given members. It does not connect until
// the first request.
func New(cfg Config) (*Client, error) {
	var eps []string
	for _, e := range cfg.Endpoints {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	if len(eps) == 0 {
		return nil, ErrNoEndpoints
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 3 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 500 * time.Millisecond
	}
	return &Client{cfg: cfg, endpoints: eps, conns: map[string]*grpc.ClientConn{}}, nil
}

// Close closes every connection. Calls in flight fail.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var first error
	for addr, cc := range c.conns {
		if err := cc.Close(); err != nil && first == nil {
			first = err
		}
		delete(c.conns, addr)
	}
	return first
}

// Leader returns the address of the member that last served a request
// only a leader can serve, or "" if none has yet.
func (c *Client) Leader() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader
}

// conn returns a KV client for addr.
func (c *Client) conn(addr string) (kvpb.KVClient, error) {
	cc, err := c.dial(addr)
	if err != nil {
		return nil, err
	}
	return kvpb.NewKVClient(cc), nil
}

// clusterConn returns a Cluster client for addr.
func (c *Client) clusterConn(addr string) (kvpb.ClusterClient, error) {
	cc, err := c.dial(addr)
	if err != nil {
		return nil, err
	}
	return kvpb.NewClusterClient(cc), nil
}

// dial returns the connection to addr, dialling it (lazily) if needed.
func (c *Client) dial(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosed
	}
	cc, ok := c.conns[addr]
	if !ok {
		var err error
		cc, err = grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			// Redial a member that was down within a second of its return,
			// not after gRPC's default backoff of up to two minutes.
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
				MinConnectTimeout: time.Second,
			}),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(8<<20), grpc.MaxCallSendMsgSize(4<<20)))
		if err != nil {
			return nil, &endpointError{fmt.Errorf("kvclient: endpoint %q: %w", addr, err)}
		}
		c.conns[addr] = cc
	}
	return cc, nil
}

// acquire takes a free session from the pool or opens a new one, and
// gives it its next sequence number.
func (c *Client) acquire() *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	var s *session
	if n := len(c.sessions); n > 0 {
		s, c.sessions = c.sessions[n-1], c.sessions[:n-1]
	} else {
		s = &session{id: randomID()}
	}
	s.seq++
	return s
}

func (c *Client) release(s *session) {
	c.mu.Lock()
	c.sessions = append(c.sessions, s)
	c.mu.Unlock()
}

func randomID() uint64 {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic(fmt.Sprintf("kvclient: crypto/rand failed: %v", err))
		}
		if id := binary.LittleEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

// pick returns the member to try next: the leader when known, otherwise
// the endpoints in turn.
func (c *Client) pick() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader != "" {
		return c.leader
	}
	addr := c.endpoints[c.next%len(c.endpoints)]
	c.next++
	return addr
}

// redirect records what an attempt on addr learned: the leader (hint
// non-empty), or that addr could not serve (forget it as leader).
func (c *Client) redirect(addr, hint string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader == addr {
		c.leader = ""
	}
	if hint == "" {
		return
	}
	c.leader = hint
	for _, e := range c.endpoints {
		if e == hint {
			return
		}
	}
	c.endpoints = append(c.endpoints, hint)
}

func (c *Client) served(addr string) {
	c.mu.Lock()
	c.leader = addr
	c.mu.Unlock()
}

// Error is an error a member answered that retrying will not fix (a key
// over the limit, an invalid range), or the last error seen when the
// context ended before any member could serve the request.
type Error struct {
	// Code is the gRPC status code.
	Code codes.Code
	// Msg is the member's message.
	Msg string
	// Endpoint is the member that answered last.
	Endpoint string
	// Cause is the context's error when retries ran out, else nil.
	Cause error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("kvclient: %v; last error from %s: %s", e.Cause, e.Endpoint, e.Msg)
	}
	return fmt.Sprintf("kvclient: %s: %s", e.Endpoint, e.Msg)
}

// Unwrap returns Cause, so errors.Is(err, context.DeadlineExceeded) works.
func (e *Error) Unwrap() error { return e.Cause }

// call runs one request with retries. leaderOnly requests go to the
// leader and follow redirects; others (serializable reads) are served by
// whichever member is tried. A retry re-sends the same request, with the
// same session and sequence number.
func (c *Client) call(ctx context.Context, leaderOnly bool, do func(ctx context.Context, addr string) error) error {
	backoff := 10 * time.Millisecond
	var last *Error
	for attempt := 0; ; attempt++ {
		addr := c.pick()
		actx, cancel := context.WithTimeout(ctx, c.cfg.AttemptTimeout)
		err := do(actx, addr)
		cancel()
		if err == nil {
			if leaderOnly {
				c.served(addr)
			}
			return nil
		}
		var ee *endpointError
		if errors.As(err, &ee) || errors.Is(err, errClosed) {
			return err // retrying cannot fix a bad address or a closed client
		}
		st := status.Convert(err)
		last = &Error{Code: st.Code(), Msg: st.Message(), Endpoint: addr}
		hint, retry := classify(st)
		if !retry {
			return last
		}
		if ctx.Err() != nil {
			last.Cause = ctx.Err()
			return last
		}
		c.redirect(addr, hint)
		if hint != "" && hint != addr {
			continue // straight to the leader
		}
		// Wait a little once every member was tried without success.
		if (attempt+1)%len(c.endpointsSnapshot()) == 0 {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				last.Cause = ctx.Err()
				return last
			case <-t.C:
			}
			backoff = min(2*backoff, c.cfg.MaxBackoff)
		}
	}
}

func (c *Client) endpointsSnapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endpoints
}

// classify says whether an error is worth retrying and which member the
// error named as the leader.
func classify(st *status.Status) (hint string, retry bool) {
	switch st.Code() {
	case codes.FailedPrecondition:
		for _, d := range st.Details() {
			if nl, ok := d.(*kvpb.NotLeader); ok {
				return nl.LeaderClientAddr, true
			}
		}
		return "", false
	case codes.Unavailable, codes.DeadlineExceeded, codes.Unknown, codes.Canceled:
		// Unavailable: the member is down or lost the proposal. Deadline
		// or Canceled: this attempt's timeout (the caller's context is
		// checked separately). Unknown: the outcome is unknown; the
		// session makes the retry safe.
		return "", true
	}
	return "", false
}
