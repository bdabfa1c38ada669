package kvserver

import (
	"context"
	"errors"
	"sort"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/node"
	"github.com/flotilla-dev/flotilla/proto/kvpb"
	"github.com/flotilla-dev/flotilla/raft"
)

// clusterAPI implements kvpb.ClusterServer: membership and leadership.
type clusterAPI struct {
	kvpb.UnimplementedClusterServer
	s *Server
}

// leaderOnly refuses a request on a follower with the usual redirect.
func (c *clusterAPI) leaderOnly() error {
	st := c.s.host.Node().Status()
	if st.Role == raft.RoleLeader {
		return nil
	}
	return c.s.grpcError(&node.NotLeaderError{Leader: st.Lead})
}

func (c *clusterAPI) list() *kvpb.MemberListResponse {
	st := c.s.host.Node().Status()
	return &kvpb.MemberListResponse{
		Header:  &kvpb.ResponseHeader{MemberId: c.s.cfg.ID, Term: st.Term, Index: c.s.store.Applied()},
		Members: c.s.memberList(), Leader: st.Lead,
	}
}

func (c *clusterAPI) MemberList(ctx context.Context, _ *kvpb.MemberListRequest) (*kvpb.MemberListResponse, error) {
	if err := c.leaderOnly(); err != nil {
		return nil, err
	}
	return c.list(), nil
}

func (c *clusterAPI) change(ctx context.Context, ch node.MembershipChange) (*kvpb.MemberListResponse, error) {
	if err := c.leaderOnly(); err != nil {
		return nil, err
	}
	if err := c.s.host.Node().ChangeMembership(ctx, ch); err != nil {
		return nil, c.s.grpcError(err)
	}
	return c.list(), nil
}

func newMember(m *kvpb.Member) (node.Member, error) {
	if m == nil || m.Id == 0 || m.PeerAddr == "" || m.ClientAddr == "" {
		return node.Member{}, status.Error(codes.InvalidArgument, "a new member needs an ID and peer and client addresses")
	}
	return node.Member{ID: m.Id, PeerAddr: m.PeerAddr, Meta: []byte(m.ClientAddr), Learner: m.Learner}, nil
}

// MemberAdd, MemberPromote and MemberRemove are idempotent: asking for a
// state that already holds (the same member with the same addresses and
// role, a voter promoted, a member this leader saw removed) succeeds
// without a change, so that a client may retry one whose answer it lost.
func (c *clusterAPI) MemberAdd(ctx context.Context, r *kvpb.MemberAddRequest) (*kvpb.MemberListResponse, error) {
	m, err := newMember(r.Member)
	if err != nil {
		return nil, err
	}
	if err := c.leaderOnly(); err != nil {
		return nil, err
	}
	for _, cur := range c.s.host.Node().Members() {
		if cur.ID == m.ID && cur.PeerAddr == m.PeerAddr && string(cur.Meta) == string(m.Meta) && cur.Learner == m.Learner {
			return c.list(), nil
		}
	}
	return c.change(ctx, node.MembershipChange{Add: []node.Member{m}})
}

func (c *clusterAPI) MemberPromote(ctx context.Context, r *kvpb.MemberPromoteRequest) (*kvpb.MemberListResponse, error) {
	if err := c.leaderOnly(); err != nil {
		return nil, err
	}
	for _, cur := range c.s.host.Node().Members() {
		if cur.ID == r.Id && !cur.Learner {
			return c.list(), nil // a voter already
		}
	}
	return c.change(ctx, node.MembershipChange{Promote: []uint64{r.Id}})
}

func (c *clusterAPI) MemberRemove(ctx context.Context, r *kvpb.MemberRemoveRequest) (*kvpb.MemberListResponse, error) {
	if err := c.leaderOnly(); err != nil {
		return nil, err
	}
	if c.s.host.Node().Removed(r.Id) {
		return c.list(), nil // removed already
	}
	return c.change(ctx, node.MembershipChange{Remove: []uint64{r.Id}})
}

func (c *clusterAPI) MemberReplace(ctx context.Context, r *kvpb.MemberReplaceRequest) (*kvpb.MemberListResponse, error) {
	ch := node.MembershipChange{Remove: r.Remove}
	for _, pm := range r.Add {
		m, err := newMember(pm)
		if err != nil {
			return nil, err
		}
		ch.Add = append(ch.Add, m)
	}
	return c.change(ctx, ch)
}

func (c *clusterAPI) LeaderTransfer(ctx context.Context, r *kvpb.LeaderTransferRequest) (*kvpb.LeaderTransferResponse, error) {
	if err := c.leaderOnly(); err != nil {
		return nil, err
	}
	n := c.s.host.Node()
	if err := n.TransferLeadership(ctx, r.To); err != nil {
		if errors.Is(err, node.ErrTransferFailed) {
			return nil, status.Error(codes.Aborted, err.Error())
		}
		return nil, c.s.grpcError(err)
	}
	st := n.Status()
	return &kvpb.LeaderTransferResponse{Leader: st.Lead, Term: st.Term}, nil
}

// clientAddr is a member's client address: recorded with it when it was
// added, or from the static member list it started with.
func (s *Server) clientAddr(id uint64) string {
	for _, m := range s.host.Node().Members() {
		if m.ID == id && len(m.Meta) > 0 {
			return string(m.Meta)
		}
	}
	return s.members[id].ClientAddr
}

// memberList is the configuration in force, with client addresses.
func (s *Server) memberList() []*kvpb.Member {
	var ms []*kvpb.Member
	for _, m := range s.host.Node().Members() {
		ms = append(ms, &kvpb.Member{Id: m.ID, PeerAddr: m.PeerAddr, ClientAddr: s.clientAddr(m.ID), Learner: m.Learner})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Id < ms[j].Id })
	return ms
}
