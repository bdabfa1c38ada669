package kvclient

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/proto/kvpb"
)

func TestNewNeedsEndpoints(t *testing.T) {
	for _, eps := range [][]string{nil, {}, {"", "  "}} {
		if _, err := New(Config{Endpoints: eps}); !errors.Is(err, ErrNoEndpoints) {
			t.Errorf("New(%q) = %v, want ErrNoEndpoints", eps, err)
		}
	}
}

func TestClassify(t *testing.T) {
	notLeader, _ := status.New(codes.FailedPrecondition, "not the leader").WithDetails(&kvpb.NotLeader{LeaderId: 2, LeaderClientAddr: "127.0.0.1:2"})
	for _, tc := range []struct {
		name  string
		st    *status.Status
		hint  string
		retry bool
	}{
		{"redirect", notLeader, "127.0.0.1:2", true},
		{"precondition without a hint", status.New(codes.FailedPrecondition, "x"), "", false},
		{"unavailable", status.New(codes.Unavailable, "x"), "", true},
		{"unknown outcome", status.New(codes.Unknown, "x"), "", true},
		{"attempt timeout", status.New(codes.DeadlineExceeded, "x"), "", true},
		{"bad argument", status.New(codes.InvalidArgument, "x"), "", false},
		{"stale sequence", status.New(codes.Aborted, "x"), "", false},
	} {
		hint, retry := classify(tc.st)
		if hint != tc.hint || retry != tc.retry {
			t.Errorf("%s: classify = (%q, %v), want (%q, %v)", tc.name, hint, retry, tc.hint, tc.retry)
		}
	}
}

// Concurrent writes must not share a session: a session allows one write
// in flight.
func TestSessionsAreNotShared(t *testing.T) {
	c, err := New(Config{Endpoints: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, b := c.acquire(), c.acquire()
	if a.id == b.id {
		t.Fatalf("two writes in flight got the same session %d", a.id)
	}
	c.release(a)
	again := c.acquire()
	if again.id != a.id || again.seq != 2 {
		t.Errorf("reused session = (%d, seq %d), want (%d, seq 2): a freed session is reused with the next number", again.id, again.seq, a.id)
	}
}

func TestUnreachableEndpointsEndWithTheContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens here now
	c, err := New(Config{Endpoints: []string{addr}, AttemptTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = c.Put(ctx, []byte("k"), []byte("v"))
	var ce *Error
	if !errors.As(err, &ce) || !errors.Is(err, context.DeadlineExceeded) || ce.Endpoint != addr {
		t.Fatalf("Put to a closed port = %v; want an *Error wrapping DeadlineExceeded naming %s", err, addr)
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q does not name the endpoint", err)
	}
}
