package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/flotilla-dev/flotilla/raft/quorum"
)

// ConfChangeType is the kind of one membership change.
type ConfChangeType uint8

const (
	// AddVoter makes a node a voter: a new node, or a learner promoted.
	AddVoter ConfChangeType = iota + 1
	// AddLearner adds a new node as a learner: it receives the log but
	// does not vote or count toward quorums.
	AddLearner
	// RemoveNode removes a voter or a learner.
	RemoveNode
)

func (t ConfChangeType) String() string {
	switch t {
	case AddVoter:
		return "AddVoter"
	case AddLearner:
		return "AddLearner"
	case RemoveNode:
		return "RemoveNode"
	}
	return fmt.Sprintf("ConfChangeType(%d)", uint8(t))
}

// ConfChangeSingle is one change of a ConfChange.
type ConfChangeSingle struct {
	Type   ConfChangeType
	NodeID uint64
}

// ConfChange is a membership change proposed with ProposeConfChange.
// A change that adds or removes at most one voter takes effect in one
// step; one that changes several voters goes through a joint
// configuration (dissertation §4.3), which the leader leaves on its own
// once the joint configuration is applied. A ConfChange with no Changes is
// that leave step.
type ConfChange struct {
	Changes []ConfChangeSingle
	// Context is opaque to the core and handed back with the entry (hosts
	// put a new member's addresses here).
	Context []byte
}

// Errors of ProposeConfChange.
var (
	// ErrConfChangePending: the previous membership change is not applied
	// yet; propose again after it is.
	ErrConfChangePending = errors.New("raft: a membership change is still pending; retry once it is applied")
	// ErrInvalidConfChange is wrapped by the errors for changes that
	// cannot be made from the current configuration.
	ErrInvalidConfChange = errors.New("raft: invalid membership change")
)

// IsJoint reports whether the configuration is joint: decisions need a
// majority of both Voters and VotersOutgoing.
func (cs ConfState) IsJoint() bool { return len(cs.VotersOutgoing) > 0 }

// Contains reports whether id is a voter (in either half) or a learner.
func (cs ConfState) Contains(id uint64) bool {
	return slices.Contains(cs.Voters, id) || slices.Contains(cs.VotersOutgoing, id) || slices.Contains(cs.Learners, id)
}

// confState is the node's current configuration as a ConfState.
func (n *Node) confState() ConfState {
	cs := ConfState{Voters: n.voters[0].IDs(), AutoLeave: n.autoLeave}
	if len(n.voters[1]) > 0 {
		cs.VotersOutgoing = n.voters[1].IDs()
	}
	for id := range n.learners {
		cs.Learners = append(cs.Learners, id)
	}
	slices.Sort(cs.Learners)
	return cs
}

// ProposeConfChange proposes a membership change on the leader and
// returns the entry's index and term, like Propose. The change takes
// effect on each node when the entry is applied (handed out in
// CommittedEntries and Advanced); hosts decode the entry with
// DecodeConfChange to learn the change and the resulting configuration.
// Only one change may be pending at a time.
func (n *Node) ProposeConfChange(cc ConfChange) (index, term uint64, err error) {
	switch {
	case n.role != RoleLeader:
		return 0, 0, &NotLeaderError{Leader: n.lead}
	case n.transferee != None:
		return 0, 0, ErrTransferring
	case n.pendingConfIndex > n.log.applied:
		return 0, 0, ErrConfChangePending
	}
	next, err := n.confState().apply(cc)
	if err != nil {
		return 0, 0, err
	}
	return n.appendConfChange(cc, next), n.term, nil
}

// appendConfChange appends a configuration entry whose data holds the
// change and the configuration it leads to.
func (n *Node) appendConfChange(cc ConfChange, next ConfState) uint64 {
	e := Entry{Term: n.term, Index: n.log.lastIndex() + 1, Type: EntryConfChange, Data: encodeConfEntry(cc, next)}
	n.log.appendLocal(e)
	n.pendingConfIndex = e.Index
	n.appendPending = true
	n.cfg.Logger.Info("raft: proposed a membership change", "id", n.id, "index", e.Index, "change", cc.String(), "to", next.String())
	return e.Index
}

// apply returns the configuration cc leads to from cs, or why it cannot.
func (cs ConfState) apply(cc ConfChange) (ConfState, error) {
	if len(cc.Changes) == 0 {
		if !cs.IsJoint() {
			return cs, fmt.Errorf("%w: no changes, and the configuration is not joint (nothing to leave)", ErrInvalidConfChange)
		}
		return ConfState{Voters: cs.Voters, Learners: cs.Learners}, nil
	}
	if cs.IsJoint() {
		return cs, fmt.Errorf("%w: the configuration %s is joint; it must be left before the next change", ErrInvalidConfChange, cs)
	}
	voters := map[uint64]bool{}
	for _, id := range cs.Voters {
		voters[id] = true
	}
	learners := map[uint64]bool{}
	for _, id := range cs.Learners {
		learners[id] = true
	}
	changed := 0 // voters added or removed
	for _, c := range cc.Changes {
		switch {
		case c.NodeID == None:
			return cs, fmt.Errorf("%w: node ID 0 is reserved", ErrInvalidConfChange)
		case c.Type == AddVoter:
			if voters[c.NodeID] {
				return cs, fmt.Errorf("%w: node %d is a voter already", ErrInvalidConfChange, c.NodeID)
			}
			delete(learners, c.NodeID)
			voters[c.NodeID] = true
			changed++
		case c.Type == AddLearner:
			if voters[c.NodeID] {
				return cs, fmt.Errorf("%w: node %d is a voter; demoting a voter is not supported (remove it, then add it as a learner)", ErrInvalidConfChange, c.NodeID)
			}
			if learners[c.NodeID] {
				return cs, fmt.Errorf("%w: node %d is a learner already", ErrInvalidConfChange, c.NodeID)
			}
			learners[c.NodeID] = true
		case c.Type == RemoveNode:
			switch {
			case voters[c.NodeID]:
				delete(voters, c.NodeID)
				changed++
			case learners[c.NodeID]:
				delete(learners, c.NodeID)
			default:
				return cs, fmt.Errorf("%w: node %d is not a member", ErrInvalidConfChange, c.NodeID)
			}
		default:
			return cs, fmt.Errorf("%w: unknown change type %d", ErrInvalidConfChange, c.Type)
		}
	}
	if len(voters) == 0 {
		return cs, fmt.Errorf("%w: the change would leave no voters", ErrInvalidConfChange)
	}
	next := ConfState{Voters: sortedKeys(voters), Learners: sortedKeys(learners)}
	if changed > 1 {
		// Several voters at once: through a joint configuration (§4.3).
		next.VotersOutgoing = slices.Clone(cs.Voters)
		next.AutoLeave = true
	}
	return next, nil
}

func sortedKeys(m map[uint64]bool) []uint64 {
	if len(m) == 0 {
		return nil
	}
	ids := make([]uint64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// applyConfState makes cs the node's configuration (an applied
// configuration entry, a restored snapshot, or a restart). Progress of
// members that stay is kept; new members start in probe state.
func (n *Node) applyConfState(cs ConfState) {
	n.voters = quorum.Joint{quorum.NewMajority(cs.Voters...), nil}
	if len(cs.VotersOutgoing) > 0 {
		n.voters[1] = quorum.NewMajority(cs.VotersOutgoing...)
	}
	n.autoLeave = cs.AutoLeave && cs.IsJoint()
	n.learners = map[uint64]bool{}
	for _, id := range cs.Learners {
		n.learners[id] = true
	}
	ids := n.voters.IDs()
	ids = append(ids, cs.Learners...)
	slices.Sort(ids)
	n.ids = slices.Compact(ids)
	prs := make(map[uint64]*progress, len(n.ids))
	for _, id := range n.ids {
		if pr, ok := n.prs[id]; ok {
			prs[id] = pr
			continue
		}
		prs[id] = &progress{
			Next:      n.log.lastIndex() + 1,
			State:     StateProbe,
			Inflights: newInflights(n.cfg.MaxInflightMsgs, n.cfg.MaxInflightBytes),
		}
		if id == n.id && n.role == RoleLeader {
			prs[id].Match = n.log.stable
		}
	}
	n.prs = prs
}

// applyConfEntry applies a committed configuration entry as the host
// Advances past it.
func (n *Node) applyConfEntry(e Entry) {
	_, cs, err := DecodeConfChange(e.Data)
	if err != nil {
		// The entry was validated by the leader that appended it; a bad
		// one means corrupt storage or a bug.
		panic(fmt.Sprintf("raft: node %d: configuration entry %d/%d does not decode: %v", n.id, e.Term, e.Index, err))
	}
	wasVoter := n.voters.Contains(n.id)
	if n.role == RoleLeader {
		n.tellRemoved(cs)
	}
	n.applyConfState(cs)
	n.confIndex = e.Index
	n.cfg.Logger.Info("raft: applied a membership change", "id", n.id, "index", e.Index, "config", cs.String())
	if n.role != RoleLeader {
		if (n.role == RoleCandidate || n.role == RolePreCandidate) && !n.voters.Contains(n.id) {
			// Removed mid-campaign: votes no longer make it a leader.
			n.becomeFollower(n.term, None)
		}
		return
	}
	if !n.voters.Contains(n.id) {
		n.stepDownRemoved(wasVoter)
		return
	}
	// The configuration may have made entries committed (a smaller
	// quorum) and leaves the leader free to change it again.
	if n.maybeCommit() {
		n.commitPending = true
	}
	n.maybeLeaveJoint()
}

// tellRemoved sends the members that cs removes one last message that
// carries the commit index, so that they apply their own removal (they
// get no messages once their progress is gone): a heartbeat to one that
// holds the configuration entry, else every entry it misses up to it,
// whatever its flow control says.
func (n *Node) tellRemoved(cs ConfState) {
	for _, id := range n.ids {
		pr := n.prs[id]
		if id == n.id || cs.Contains(id) {
			continue
		}
		if pr.Match >= n.log.committed {
			n.send(Message{Type: MsgHeartbeat, To: id, Commit: n.log.committed})
			continue
		}
		if t, err := n.log.term(pr.Match); err == nil {
			n.sendCatchUp(id, pr.Match, t)
		}
	}
}

// sendCatchUp sends a node outside the configuration the committed entries
// after its entry (last, lastTerm), up to MaxMsgBytes, with the commit
// index, whatever flow control would say: it has no progress to pace it
// (its next campaign gets the next part). Nothing is sent if the
// log does not hold that entry (the logs diverge there, or it is
// compacted away).
func (n *Node) sendCatchUp(to, last, lastTerm uint64) {
	if last > n.log.committed || !n.log.matchTerm(last, lastTerm) {
		return
	}
	ents, err := n.log.slice(last+1, n.log.committed+1, n.cfg.MaxMsgBytes)
	if err != nil {
		return
	}
	n.send(Message{Type: MsgApp, To: to, Index: last, LogTerm: lastTerm, Entries: ents, Commit: n.log.committed})
}

// stepDownRemoved is a leader that applied its own removal (dissertation
// §4.2.2): it hands the cluster to the most up-to-date voter and becomes
// a follower that never campaigns again.
func (n *Node) stepDownRemoved(wasVoter bool) {
	var best uint64
	for _, id := range n.voters.IDs() {
		if pr := n.prs[id]; best == None || pr.Match > n.prs[best].Match {
			best = id
		}
	}
	n.cfg.Logger.Info("raft: leader removed from the configuration; stepping down", "id", n.id, "term", n.term, "handing to", best)
	if wasVoter && best != None && n.prs[best].Match == n.log.lastIndex() {
		n.sendTimeoutNow(best)
	}
	n.becomeFollower(n.term, None)
}

// maybeLeaveJoint proposes leaving a joint configuration the leader entered
// with AutoLeave, once it is applied and no other change is pending.
func (n *Node) maybeLeaveJoint() {
	if n.role != RoleLeader || !n.autoLeave || n.pendingConfIndex > n.log.applied || n.transferee != None {
		return
	}
	cs := n.confState()
	next, err := cs.apply(ConfChange{})
	if err != nil {
		return
	}
	n.appendConfChange(ConfChange{}, next)
}

// maybePromoteLearner proposes to make a caught-up learner a voter when
// Config.AutoPromoteLearners is set.
func (n *Node) maybePromoteLearner() {
	if !n.cfg.AutoPromoteLearners || n.role != RoleLeader || n.pendingConfIndex > n.log.applied ||
		n.transferee != None || n.voters[1] != nil {
		return
	}
	last := n.log.lastIndex()
	for _, id := range n.ids {
		pr := n.prs[id]
		if !n.learners[id] || !pr.RecentActive || pr.Match+n.cfg.PromoteLagEntries < last {
			continue
		}
		cc := ConfChange{Changes: []ConfChangeSingle{{Type: AddVoter, NodeID: id}}}
		next, err := n.confState().apply(cc)
		if err != nil {
			continue
		}
		n.cfg.Logger.Info("raft: promoting a caught-up learner", "id", n.id, "learner", id, "match", pr.Match, "last", last)
		n.appendConfChange(cc, next)
		return
	}
}

// The encoding of a configuration entry's data. Integers are uvarints:
//
//	format(1)=1 | nChanges | nChanges × (type u8 | node) | len | context
//	| nVoters | voters | nOutgoing | outgoing | nLearners | learners | autoLeave u8
const confFormat = 1

// maxConfMembers bounds every ID list a configuration entry may carry.
const maxConfMembers = 1 << 16

func encodeConfEntry(cc ConfChange, cs ConfState) []byte {
	b := []byte{confFormat}
	b = binary.AppendUvarint(b, uint64(len(cc.Changes)))
	for _, c := range cc.Changes {
		b = append(b, byte(c.Type))
		b = binary.AppendUvarint(b, c.NodeID)
	}
	b = binary.AppendUvarint(b, uint64(len(cc.Context)))
	b = append(b, cc.Context...)
	for _, ids := range [][]uint64{cs.Voters, cs.VotersOutgoing, cs.Learners} {
		b = binary.AppendUvarint(b, uint64(len(ids)))
		for _, id := range ids {
			b = binary.AppendUvarint(b, id)
		}
	}
	auto := byte(0)
	if cs.AutoLeave {
		auto = 1
	}
	return append(b, auto)
}

// DecodeConfChange decodes the data of an EntryConfChange entry: the
// change that was proposed and the configuration it led to. The Context
// aliases data. Counts are bounded before anything is allocated.
func DecodeConfChange(data []byte) (ConfChange, ConfState, error) {
	var cc ConfChange
	var cs ConfState
	d := confDecoder{b: data}
	if f := d.byte(); d.err == nil && f != confFormat {
		return cc, cs, fmt.Errorf("raft: configuration entry has unknown format %d", f)
	}
	if n := d.count(2); n > 0 {
		cc.Changes = make([]ConfChangeSingle, n)
		for i := range cc.Changes {
			cc.Changes[i] = ConfChangeSingle{Type: ConfChangeType(d.byte()), NodeID: d.uvarint()}
		}
	}
	if n := d.count(1); n > 0 && d.err == nil {
		cc.Context = data[d.off : d.off+n]
		d.off += n
	}
	lists := [3]*[]uint64{&cs.Voters, &cs.VotersOutgoing, &cs.Learners}
	for _, l := range lists {
		if n := d.count(1); n > 0 {
			*l = make([]uint64, n)
			for i := range *l {
				(*l)[i] = d.uvarint()
			}
		}
	}
	cs.AutoLeave = d.byte() == 1
	if d.err == nil && d.off != len(data) {
		d.err = fmt.Errorf("%d trailing bytes", len(data)-d.off)
	}
	if d.err != nil {
		return ConfChange{}, ConfState{}, fmt.Errorf("raft: malformed configuration entry: %w", d.err)
	}
	return cc, cs, nil
}

// confDecoder reads a configuration entry; the first error sticks.
type confDecoder struct {
	b   []byte
	off int
	err error
}

func (d *confDecoder) byte() byte {
	if d.err != nil || d.off >= len(d.b) {
		d.fail()
		return 0
	}
	d.off++
	return d.b[d.off-1]
}

func (d *confDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	x, k := binary.Uvarint(d.b[d.off:])
	if k <= 0 {
		d.fail()
		return 0
	}
	d.off += k
	return x
}

// count reads a length whose items take at least min bytes each, and
// refuses one the rest of the input cannot hold.
func (d *confDecoder) count(min int) int {
	n := d.uvarint()
	if d.err == nil && (n > maxConfMembers && min > 1 || n > uint64(len(d.b)-d.off)/uint64(min)) {
		d.err = fmt.Errorf("count %d at byte %d exceeds the input", n, d.off)
		return 0
	}
	return int(n)
}

func (d *confDecoder) fail() {
	if d.err == nil {
		d.err = fmt.Errorf("truncated at byte %d", d.off)
	}
}

func (cc ConfChange) String() string {
	if len(cc.Changes) == 0 {
		return "leave-joint"
	}
	s := ""
	for i, c := range cc.Changes {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%v(%d)", c.Type, c.NodeID)
	}
	return s
}

func (cs ConfState) String() string {
	s := fmt.Sprintf("voters=%v", cs.Voters)
	if cs.IsJoint() {
		s += fmt.Sprintf("&&%v", cs.VotersOutgoing)
	}
	if len(cs.Learners) > 0 {
		s += fmt.Sprintf(" learners=%v", cs.Learners)
	}
	if cs.AutoLeave {
		s += " autoleave"
	}
	return s
}
