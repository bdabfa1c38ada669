package kvserver

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/kv"
	"github.com/flotilla-dev/flotilla/node"
	"github.com/flotilla-dev/flotilla/proto/kvpb"
	"github.com/flotilla-dev/flotilla/raft"
	"github.com/flotilla-dev/flotilla/rsm"
)

// api implements kvpb.KVServer on a Server.
type api struct {
	kvpb.UnimplementedKVServer
	s *Server
}

func (a *api) Get(ctx context.Context, r *kvpb.GetRequest) (*kvpb.GetResponse, error) {
	if err := a.s.checkKey("key", r.Key, false); err != nil {
		return nil, err
	}
	res, h, err := a.s.read(ctx, r.Consistency, kv.Command{Op: kv.OpGet, Key: r.Key})
	if err != nil {
		return nil, err
	}
	return &kvpb.GetResponse{Header: h, Found: res.Found, Value: res.Value, Version: res.Version}, nil
}

func (a *api) Range(ctx context.Context, r *kvpb.RangeRequest) (*kvpb.RangeResponse, error) {
	if err := a.s.checkKey("key", r.Key, true); err != nil {
		return nil, err
	}
	if err := a.s.checkKey("end", r.End, true); err != nil {
		return nil, err
	}
	if r.Limit < 0 || r.Limit > kv.MaxRangeLimit {
		return nil, status.Errorf(codes.InvalidArgument, "limit %d is out of range: use 0 (the maximum) to %d", r.Limit, kv.MaxRangeLimit)
	}
	if r.Prefix && len(r.End) > 0 {
		return nil, status.Error(codes.InvalidArgument, "a prefix range takes no end key")
	}
	c := kv.Command{Op: kv.OpRange, Key: r.Key, End: r.End, Prefix: r.Prefix, Limit: int(r.Limit)}
	res, h, err := a.s.read(ctx, r.Consistency, c)
	if err != nil {
		return nil, err
	}
	out := &kvpb.RangeResponse{Header: h, More: res.More, Kvs: make([]*kvpb.KeyValue, len(res.KVs))}
	for i, e := range res.KVs {
		out.Kvs[i] = &kvpb.KeyValue{Key: e.Key, Value: e.Value, Version: e.Version}
	}
	return out, nil
}

func (a *api) Put(ctx context.Context, r *kvpb.PutRequest) (*kvpb.PutResponse, error) {
	if err := a.s.checkWrite(r.Key, r.Value); err != nil {
		return nil, err
	}
	res, h, err := a.s.write(ctx, r.Session, kv.Command{Op: kv.OpPut, Key: r.Key, Value: r.Value})
	if err != nil {
		return nil, err
	}
	return &kvpb.PutResponse{Header: h, Version: res.Version, Existed: res.Found}, nil
}

func (a *api) Delete(ctx context.Context, r *kvpb.DeleteRequest) (*kvpb.DeleteResponse, error) {
	if err := a.s.checkKey("key", r.Key, false); err != nil {
		return nil, err
	}
	res, h, err := a.s.write(ctx, r.Session, kv.Command{Op: kv.OpDelete, Key: r.Key})
	if err != nil {
		return nil, err
	}
	return &kvpb.DeleteResponse{Header: h, Deleted: res.Found}, nil
}

func (a *api) Append(ctx context.Context, r *kvpb.AppendRequest) (*kvpb.AppendResponse, error) {
	if err := a.s.checkWrite(r.Key, r.Value); err != nil {
		return nil, err
	}
	res, h, err := a.s.write(ctx, r.Session, kv.Command{Op: kv.OpAppend, Key: r.Key, Value: r.Value})
	if err != nil {
		return nil, err
	}
	return &kvpb.AppendResponse{Header: h, Version: res.Version, Existed: res.Found}, nil
}

func (a *api) CompareAndSwap(ctx context.Context, r *kvpb.CompareAndSwapRequest) (*kvpb.CompareAndSwapResponse, error) {
	if err := a.s.checkWrite(r.Key, r.Value); err != nil {
		return nil, err
	}
	c := kv.Command{Op: kv.OpCAS, Key: r.Key, Value: r.Value}
	switch e := r.Expect.(type) {
	case *kvpb.CompareAndSwapRequest_ExpectValue:
		if len(r.Value)+len(e.ExpectValue) > a.s.cfg.MaxValueBytes {
			return nil, status.Errorf(codes.InvalidArgument, "value and expected value are %d bytes together; the limit is %d", len(r.Value)+len(e.ExpectValue), a.s.cfg.MaxValueBytes)
		}
		c.Expect = e.ExpectValue
		if c.Expect == nil {
			c.Expect = []byte{}
		}
	case *kvpb.CompareAndSwapRequest_ExpectVersion:
		c.ExpectByVersion, c.ExpectVersion = true, e.ExpectVersion
	case *kvpb.CompareAndSwapRequest_ExpectAbsent:
		if !e.ExpectAbsent {
			return nil, status.Error(codes.InvalidArgument, "expect_absent must be true when set")
		}
		c.ExpectAbsent = true
	default:
		return nil, status.Error(codes.InvalidArgument, "compare-and-swap needs an expectation: expect_value, expect_version or expect_absent")
	}
	res, h, err := a.s.write(ctx, r.Session, c)
	if err != nil {
		return nil, err
	}
	return &kvpb.CompareAndSwapResponse{Header: h, Swapped: res.Swapped, Version: res.Version, Found: res.Found, Value: res.Value}, nil
}

func (a *api) Status(ctx context.Context, _ *kvpb.StatusRequest) (*kvpb.StatusResponse, error) {
	// The node's applied index counts entries the store never sees (no-ops,
	// membership changes). Read it first: every entry up to it is in the
	// store by then, so the store's state read next is the state at the
	// larger of the two indexes.
	st := a.s.host.Node().Status()
	applied, keys, hash := a.s.store.State()
	applied = max(applied, st.Applied)
	return &kvpb.StatusResponse{
		MemberId: a.s.cfg.ID, ClusterId: a.s.cfg.ClusterID, Role: roleName(st.Role), Term: st.Term,
		Leader: st.Lead, CommitIndex: max(st.Commit, applied), AppliedIndex: applied,
		Members: a.s.memberList(), Keys: uint64(keys), StateHash: hash,
		Version: a.s.cfg.Version,
	}, nil
}

// roleName is the role as the API reports it.
func roleName(r raft.Role) string {
	switch r {
	case raft.RoleLeader:
		return "leader"
	case raft.RoleCandidate:
		return "candidate"
	case raft.RolePreCandidate:
		return "pre-candidate"
	default:
		return "follower"
	}
}

// checkKey validates a key against the configured limit; empty is allowed
// only where the API allows it.
func (s *Server) checkKey(field string, key []byte, emptyOK bool) error {
	if len(key) == 0 && !emptyOK {
		return status.Errorf(codes.InvalidArgument, "%s is empty; a key needs at least one byte", field)
	}
	if len(key) > s.cfg.MaxKeyBytes {
		return status.Errorf(codes.InvalidArgument, "%s is %d bytes; the limit is %d (--max-key-bytes)", field, len(key), s.cfg.MaxKeyBytes)
	}
	return nil
}

func (s *Server) checkWrite(key, value []byte) error {
	if err := s.checkKey("key", key, false); err != nil {
		return err
	}
	if len(value) > s.cfg.MaxValueBytes {
		return status.Errorf(codes.InvalidArgument, "value is %d bytes; the limit is %d (--max-value-bytes)", len(value), s.cfg.MaxValueBytes)
	}
	return nil
}

// write proposes c under the request's session.
func (s *Server) write(ctx context.Context, sess *kvpb.Session, c kv.Command) (kv.Result, *kvpb.ResponseHeader, error) {
	var client, seq uint64
	if sess != nil {
		client, seq = sess.ClientId, sess.Seq
	}
	return s.propose(ctx, client, seq, c)
}

// read answers a Get or Range. Linearizable reads (the default) wait for
// a ReadIndex confirmed by the leader and applied here (or, with
// Config.ReadThroughLog, go through the log), then read the local store;
// serializable reads read it at once.
func (s *Server) read(ctx context.Context, cons kvpb.Consistency, c kv.Command) (kv.Result, *kvpb.ResponseHeader, error) {
	switch cons {
	case kvpb.Consistency_CONSISTENCY_UNSPECIFIED, kvpb.Consistency_CONSISTENCY_LINEARIZABLE:
		if s.cfg.ReadThroughLog {
			return s.propose(ctx, 0, 0, c)
		}
		if _, err := s.host.Node().ReadIndex(ctx); err != nil {
			return kv.Result{}, nil, s.grpcError(err)
		}
		fallthrough
	case kvpb.Consistency_CONSISTENCY_SERIALIZABLE:
		res, err := s.store.Read(c)
		if err != nil {
			return kv.Result{}, nil, status.Error(codes.InvalidArgument, err.Error())
		}
		return res, &kvpb.ResponseHeader{MemberId: s.cfg.ID, Term: s.host.Node().Term(), Index: s.store.Applied()}, nil
	}
	return kv.Result{}, nil, status.Errorf(codes.InvalidArgument, "unknown consistency %d", cons)
}

func (s *Server) propose(ctx context.Context, client, seq uint64, c kv.Command) (kv.Result, *kvpb.ResponseHeader, error) {
	cmd, err := kv.EncodeCommand(c)
	if err != nil {
		return kv.Result{}, nil, status.Error(codes.InvalidArgument, err.Error())
	}
	out, err := s.host.Do(ctx, client, seq, cmd)
	if err != nil {
		return kv.Result{}, nil, s.grpcError(err)
	}
	res, err := kv.DecodeResult(out)
	if err != nil {
		return kv.Result{}, nil, status.Errorf(codes.Internal, "decoding the store's result: %v", err)
	}
	if err := res.AsError(); err != nil {
		return kv.Result{}, nil, status.Error(codes.InvalidArgument, err.Error())
	}
	// Term, not Status: a Status is a round trip to the node's loop, one
	// per request on its busiest goroutine.
	return res, &kvpb.ResponseHeader{MemberId: s.cfg.ID, Term: s.host.Node().Term(), Index: s.store.Applied()}, nil
}

// grpcError maps an error from the replicated host to a gRPC status.
// Unavailable means "not done; retry" (on another member if this one
// stops), Unknown that the command may or may not have been applied (safe
// to retry with the same session).
func (s *Server) grpcError(err error) error {
	var nl *node.NotLeaderError
	switch {
	case errors.As(err, &nl):
		msg := "not the leader; no leader is known yet (an election may be under way)"
		d := &kvpb.NotLeader{LeaderId: nl.Leader}
		if addr := s.clientAddr(nl.Leader); nl.Leader != raft.None && addr != "" {
			d.LeaderClientAddr = addr
			msg = fmt.Sprintf("not the leader; member %d at %s is", nl.Leader, addr)
		}
		st, _ := status.New(codes.FailedPrecondition, msg).WithDetails(d)
		return st.Err()
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, node.ErrOutcomeUnknown):
		return status.Error(codes.Unknown, err.Error())
	case errors.Is(err, node.ErrProposalLost), errors.Is(err, node.ErrStopped), errors.Is(err, node.ErrReadLost),
		errors.Is(err, raft.ErrConfChangePending):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, node.ErrCommandTooLarge), errors.Is(err, raft.ErrInvalidConfChange):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, rsm.ErrStaleSequence):
		return status.Error(codes.Aborted, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}
