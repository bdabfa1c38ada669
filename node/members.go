package node

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/flotilla-dev/flotilla/raft"
)

// Member is one member of the group as the node knows it.
type Member struct {
	ID uint64
	// PeerAddr is where the member's transport listens.
	PeerAddr string
	// Meta is opaque service data recorded with the member when it was
	// added (a KV server stores its client address here).
	Meta []byte
	// Learner is set for a member that receives the log but does not vote.
	Learner bool
}

// MembershipChange is a change to the group's membership, made with one
// configuration entry: Add members (as learners, or voters), Promote
// learners to voters, Remove members. A change of more than one voter goes
// through a joint configuration (dissertation §4.3).
type MembershipChange struct {
	Add     []Member
	Promote []uint64
	Remove  []uint64
}

// ErrRemoved is the error a node stops with once it applied its own
// removal from the group.
var ErrRemoved = errors.New("node: removed from the cluster")

// ChangeMembership proposes a membership change on the leader and returns
// once this node has applied it. Errors: a *NotLeaderError on a follower,
// raft.ErrConfChangePending while a previous change is not yet applied
// (retry), or an error wrapping raft.ErrInvalidConfChange naming why the
// change cannot be made.
func (n *Node) ChangeMembership(ctx context.Context, ch MembershipChange) error {
	var cc raft.ConfChange
	for _, m := range ch.Add {
		if m.ID == 0 || m.PeerAddr == "" {
			return fmt.Errorf("%w: a new member needs a non-zero ID and a peer address", raft.ErrInvalidConfChange)
		}
		t := raft.AddVoter
		if m.Learner {
			t = raft.AddLearner
		}
		cc.Changes = append(cc.Changes, raft.ConfChangeSingle{Type: t, NodeID: m.ID})
	}
	for _, id := range ch.Promote {
		cc.Changes = append(cc.Changes, raft.ConfChangeSingle{Type: raft.AddVoter, NodeID: id})
	}
	for _, id := range ch.Remove {
		cc.Changes = append(cc.Changes, raft.ConfChangeSingle{Type: raft.RemoveNode, NodeID: id})
	}
	if len(cc.Changes) == 0 {
		return fmt.Errorf("%w: no changes", raft.ErrInvalidConfChange)
	}
	cc.Context = encodeMembers(ch.Add)
	p := &proposal{conf: &cc, done: make(chan proposalResult, 1)}
	_, err := n.submit(ctx, p)
	return err
}

// Members returns the members of the configuration in force, in ID order.
func (n *Node) Members() []Member {
	n.membersMu.Lock()
	defer n.membersMu.Unlock()
	out := make([]Member, 0, len(n.members))
	for _, m := range n.members {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Removed reports whether id was a member until a configuration change
// this node applied removed it, and is not a member now. It lets a retried
// removal whose answer was lost succeed instead of failing with "not a
// member". It knows the removals applied from the log since this process
// started (a restart replays those after the last snapshot), not ones
// folded into a snapshot it restored.
func (n *Node) Removed(id uint64) bool {
	n.membersMu.Lock()
	defer n.membersMu.Unlock()
	_, member := n.members[id]
	return n.removedIDs[id] && !member
}

// peerAddr returns a member's peer address, or "".
func (n *Node) peerAddr(id uint64) string {
	n.membersMu.Lock()
	defer n.membersMu.Unlock()
	return n.members[id].PeerAddr
}

// applyMembership updates the address book and the transport for a
// committed configuration entry (loop goroutine). It reports whether this
// node is no longer a member while it was one before.
func (n *Node) applyMembership(e raft.Entry) (removed bool) {
	cc, cs, err := raft.DecodeConfChange(e.Data)
	if err != nil {
		n.log.Error("undecodable configuration entry", "id", n.cfg.ID, "index", e.Index, "err", err)
		return false
	}
	adds, err := decodeMembers(cc.Context)
	if err != nil {
		n.log.Error("undecodable member list in a configuration entry", "id", n.cfg.ID, "index", e.Index, "err", err)
	}
	n.membersMu.Lock()
	defer n.membersMu.Unlock()
	wasMember := n.inConfig
	n.inConfig = cs.Contains(n.cfg.ID)
	for _, m := range adds {
		n.members[m.ID] = m
		delete(n.removedIDs, m.ID)
		if m.ID != n.cfg.ID {
			n.tr.AddPeer(m.ID, m.PeerAddr)
		}
	}
	n.setRoles(cs)
	for id := range n.members {
		if !cs.Contains(id) {
			n.removedAddrs[id] = n.members[id].PeerAddr
			n.removedIDs[id] = true
			delete(n.members, id)
			if id != n.cfg.ID {
				// Not at once: the core still sends it the commit of its
				// removal (raft tellRemoved).
				n.dropPeers[id] = n.ticks + uint64(n.cfg.ElectionTicks)
			}
		}
	}
	n.voterCount = len(cs.Voters)
	n.log.Info("membership changed", "id", n.cfg.ID, "index", e.Index, "change", cc.String(), "config", cs.String())
	return wasMember && !cs.Contains(n.cfg.ID)
}

// reachRemoved reconnects to removed members the core sends to: the leader
// answers a removed member's campaign with the log up to its removal
// (raft sendCatchUp), which must reach it even after its grace period.
func (n *Node) reachRemoved(msgs []raft.Message) {
	if len(n.removedAddrs) == 0 {
		return
	}
	for _, m := range msgs {
		addr, ok := n.removedAddrs[m.To]
		if !ok {
			continue
		}
		if _, member := n.members[m.To]; member {
			delete(n.removedAddrs, m.To) // added back
			continue
		}
		if _, connected := n.dropPeers[m.To]; !connected {
			n.tr.AddPeer(m.To, addr)
		}
		n.dropPeers[m.To] = n.ticks + uint64(n.cfg.ElectionTicks)
	}
}

// dropRemovedPeers closes the transport to removed members once their
// grace period is over (loop goroutine, on ticks).
func (n *Node) dropRemovedPeers() {
	for id, at := range n.dropPeers {
		if n.ticks < at {
			continue
		}
		delete(n.dropPeers, id)
		n.membersMu.Lock()
		_, back := n.members[id]
		n.membersMu.Unlock()
		if !back {
			n.tr.RemovePeer(id)
		}
	}
}

// setRoles marks learners in the address book; membersMu is held.
func (n *Node) setRoles(cs raft.ConfState) {
	for id, m := range n.members {
		m.Learner = slices.Contains(cs.Learners, id)
		n.members[id] = m
	}
}

// The member list in a configuration entry's context and in the node's
// snapshot wrapper (integers are uvarints):
//
//	format(1)=1 | count | count × (id | len | peer address | len | meta | learner u8)
const membersFormat = 1

// maxMembers bounds a decoded member list.
const maxMembers = 1 << 16

func encodeMembers(ms []Member) []byte {
	if len(ms) == 0 {
		return nil
	}
	b := []byte{membersFormat}
	b = binary.AppendUvarint(b, uint64(len(ms)))
	for _, m := range ms {
		b = binary.AppendUvarint(b, m.ID)
		b = binary.AppendUvarint(b, uint64(len(m.PeerAddr)))
		b = append(b, m.PeerAddr...)
		b = binary.AppendUvarint(b, uint64(len(m.Meta)))
		b = append(b, m.Meta...)
		l := byte(0)
		if m.Learner {
			l = 1
		}
		b = append(b, l)
	}
	return b
}

func decodeMembers(b []byte) ([]Member, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if b[0] != membersFormat {
		return nil, fmt.Errorf("node: member list has unknown format %d", b[0])
	}
	off := 1
	next := func() (uint64, bool) {
		x, k := binary.Uvarint(b[off:])
		if k <= 0 {
			return 0, false
		}
		off += k
		return x, true
	}
	bytesField := func() ([]byte, bool) {
		l, ok := next()
		if !ok || l > uint64(len(b)-off) {
			return nil, false
		}
		v := slices.Clone(b[off : off+int(l)])
		off += int(l)
		return v, true
	}
	count, ok := next()
	if !ok || count > maxMembers || count > uint64(len(b)-off)/4 {
		return nil, errors.New("node: malformed member list (count)")
	}
	ms := make([]Member, 0, count)
	for range count {
		id, ok1 := next()
		peer, ok2 := bytesField()
		meta, ok3 := bytesField()
		if !ok1 || !ok2 || !ok3 || off >= len(b)+1 || off > len(b)-1 || b[off] > 1 {
			return nil, errors.New("node: malformed member list (truncated)")
		}
		learner := b[off] == 1
		off++
		if len(meta) == 0 {
			meta = nil
		}
		ms = append(ms, Member{ID: id, PeerAddr: string(peer), Meta: meta, Learner: learner})
	}
	if off != len(b) {
		return nil, fmt.Errorf("node: malformed member list (%d trailing bytes)", len(b)-off)
	}
	return ms, nil
}

// The node wraps the state machine's snapshot with its address book, so
// that a node restored from a snapshot knows every member's address:
//
//	"FNSN" format(1)=1 | len(members)(8) | members (encodeMembers) | state machine image
//
// Data without the magic is a state machine image alone (older snapshots).
const snapWrapMagic = "FNSN\x01"

func (n *Node) wrapSnapshot(sm []byte) []byte {
	n.membersMu.Lock()
	ms := make([]Member, 0, len(n.members))
	for _, m := range n.members {
		ms = append(ms, m)
	}
	n.membersMu.Unlock()
	slices.SortFunc(ms, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	mb := encodeMembers(ms)
	out := make([]byte, 0, len(snapWrapMagic)+8+len(mb)+len(sm))
	out = append(out, snapWrapMagic...)
	out = binary.LittleEndian.AppendUint64(out, uint64(len(mb)))
	out = append(out, mb...)
	return append(out, sm...)
}

// unwrapSnapshot splits a node snapshot into its members (nil for an old
// snapshot without them) and the state machine image.
func unwrapSnapshot(data []byte) ([]Member, []byte, error) {
	if len(data) < len(snapWrapMagic)+8 || string(data[:len(snapWrapMagic)]) != snapWrapMagic {
		return nil, data, nil
	}
	rest := data[len(snapWrapMagic):]
	l := binary.LittleEndian.Uint64(rest)
	rest = rest[8:]
	if l > uint64(len(rest)) {
		return nil, nil, fmt.Errorf("node: snapshot member list of %d bytes does not fit the snapshot", l)
	}
	ms, err := decodeMembers(rest[:l])
	if err != nil {
		return nil, nil, err
	}
	return ms, rest[l:], nil
}

// restoreMembers replaces the address book from a snapshot (recovery or an
// installed snapshot) and reconnects the transport.
func (n *Node) restoreMembers(ms []Member, cs raft.ConfState) {
	if ms == nil {
		return // an old snapshot: keep the configured peers
	}
	n.membersMu.Lock()
	defer n.membersMu.Unlock()
	old := n.members
	n.members = map[uint64]Member{}
	for _, m := range ms {
		n.members[m.ID] = m
		delete(n.removedIDs, m.ID) // added back, in what the snapshot holds
	}
	n.setRoles(cs)
	n.inConfig = cs.Contains(n.cfg.ID)
	n.voterCount = len(cs.Voters)
	if n.tr == nil {
		return // recovery: the transport starts with these peers
	}
	for id, m := range n.members {
		if id != n.cfg.ID && old[id].PeerAddr != m.PeerAddr {
			n.tr.AddPeer(id, m.PeerAddr)
		}
	}
	for id := range old {
		if _, ok := n.members[id]; !ok && id != n.cfg.ID {
			n.tr.RemovePeer(id)
		}
	}
}

// joinedMarker is a file in the data directory of a node that joined a
// running cluster: when it restarts without a snapshot, its membership
// starts empty (raft.Config.Join), not from Peers.
const joinedMarker = "JOINED"

func (n *Node) markJoined() error {
	path := filepath.Join(n.cfg.DataDir, joinedMarker)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	if err := os.WriteFile(path, []byte("this node joined a running cluster\n"), 0o644); err != nil {
		return fmt.Errorf("node %d: %w", n.cfg.ID, err)
	}
	d, err := os.Open(n.cfg.DataDir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (n *Node) joinedBefore() bool {
	_, err := os.Stat(filepath.Join(n.cfg.DataDir, joinedMarker))
	return err == nil
}
