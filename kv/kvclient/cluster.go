package kvclient

import (
	"context"

	"github.com/flotilla-dev/flotilla/proto/kvpb"
)

// Member is a member of the cluster.
type Member struct {
	ID                   uint64
	PeerAddr, ClientAddr string
	// Learner is set for a member that receives the log but does not vote.
	Learner bool
}

func toMembers(r *kvpb.MemberListResponse) (ms []Member, leader uint64) {
	for _, m := range r.Members {
		ms = append(ms, Member{ID: m.Id, PeerAddr: m.PeerAddr, ClientAddr: m.ClientAddr, Learner: m.Learner})
	}
	return ms, r.Leader
}

func toPB(m Member) *kvpb.Member {
	return &kvpb.Member{Id: m.ID, PeerAddr: m.PeerAddr, ClientAddr: m.ClientAddr, Learner: m.Learner}
}

// cluster runs a Cluster RPC on the leader, with the usual redirects and
// retries. Membership changes are retried while a previous one is pending.
func (c *Client) cluster(ctx context.Context, do func(context.Context, kvpb.ClusterClient) (*kvpb.MemberListResponse, error)) ([]Member, uint64, error) {
	var resp *kvpb.MemberListResponse
	err := c.call(ctx, true, func(ctx context.Context, addr string) (err error) {
		cc, err := c.clusterConn(addr)
		if err != nil {
			return err
		}
		resp, err = do(ctx, cc)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	ms, leader := toMembers(resp)
	return ms, leader, nil
}

// MemberList returns the members and the leader's ID.
func (c *Client) MemberList(ctx context.Context) ([]Member, uint64, error) {
	return c.cluster(ctx, func(ctx context.Context, cc kvpb.ClusterClient) (*kvpb.MemberListResponse, error) {
		return cc.MemberList(ctx, &kvpb.MemberListRequest{})
	})
}

// MemberAdd adds a member (a learner if m.Learner) and returns the new
// member list.
func (c *Client) MemberAdd(ctx context.Context, m Member) ([]Member, error) {
	ms, _, err := c.cluster(ctx, func(ctx context.Context, cc kvpb.ClusterClient) (*kvpb.MemberListResponse, error) {
		return cc.MemberAdd(ctx, &kvpb.MemberAddRequest{Member: toPB(m)})
	})
	return ms, err
}

// MemberPromote makes a learner a voter.
func (c *Client) MemberPromote(ctx context.Context, id uint64) ([]Member, error) {
	ms, _, err := c.cluster(ctx, func(ctx context.Context, cc kvpb.ClusterClient) (*kvpb.MemberListResponse, error) {
		return cc.MemberPromote(ctx, &kvpb.MemberPromoteRequest{Id: id})
	})
	return ms, err
}

// MemberRemove removes a member.
func (c *Client) MemberRemove(ctx context.Context, id uint64) ([]Member, error) {
	ms, _, err := c.cluster(ctx, func(ctx context.Context, cc kvpb.ClusterClient) (*kvpb.MemberListResponse, error) {
		return cc.MemberRemove(ctx, &kvpb.MemberRemoveRequest{Id: id})
	})
	return ms, err
}

// MemberReplace adds and removes voters in one joint change.
func (c *Client) MemberReplace(ctx context.Context, add []Member, remove []uint64) ([]Member, error) {
	req := &kvpb.MemberReplaceRequest{Remove: remove}
	for _, m := range add {
		req.Add = append(req.Add, toPB(m))
	}
	ms, _, err := c.cluster(ctx, func(ctx context.Context, cc kvpb.ClusterClient) (*kvpb.MemberListResponse, error) {
		return cc.MemberReplace(ctx, req)
	})
	return ms, err
}

// LeaderTransfer hands leadership to voter to (0: the most up-to-date
// one) and returns the new leader's ID.
func (c *Client) LeaderTransfer(ctx context.Context, to uint64) (uint64, error) {
	var resp *kvpb.LeaderTransferResponse
	err := c.call(ctx, true, func(ctx context.Context, addr string) (err error) {
		cc, err := c.clusterConn(addr)
		if err != nil {
			return err
		}
		resp, err = cc.LeaderTransfer(ctx, &kvpb.LeaderTransferRequest{To: to})
		return err
	})
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	c.leader = "" // the old leader no longer leads
	c.mu.Unlock()
	return resp.Leader, nil
}
