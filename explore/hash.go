package explore

import (
	"encoding/binary"
	"hash/fnv"
	"maps"
	"slices"

	"github.com/flotilla-dev/flotilla/raft"
)

// StateHash identifies a world state for pruning (128-bit FNV-1a over a
// canonical encoding of the observable state).
type StateHash [16]byte

// enc builds a canonical byte encoding.
type enc struct{ b []byte }

func (e *enc) u(v uint64) { e.b = binary.AppendUvarint(e.b, v) }

func (e *enc) flag(v bool) {
	if v {
		e.u(1)
	} else {
		e.u(0)
	}
}

func (e *enc) bytes(p []byte) { e.u(uint64(len(p))); e.b = append(e.b, p...) }

func (e *enc) entry(x raft.Entry) {
	e.u(x.Term)
	e.u(x.Index)
	e.u(uint64(x.Type))
	e.bytes(x.Data)
}

// msgKey is the canonical encoding of a message. The heartbeat round in
// Context is left out: it only confirms reads, which the explorer does not
// issue, and counting rounds would tell otherwise equal states apart.
func msgKey(m raft.Message) string {
	var e enc
	e.u(uint64(m.Type))
	e.u(m.From)
	e.u(m.To)
	e.u(m.Term)
	e.u(m.LogTerm)
	e.u(m.Index)
	e.u(m.Commit)
	e.flag(m.Reject)
	e.u(m.RejectHint)
	if m.Type != raft.MsgHeartbeat && m.Type != raft.MsgHeartbeatResp {
		e.u(m.Context)
	}
	e.u(uint64(len(m.Entries)))
	for _, x := range m.Entries {
		e.entry(x)
	}
	return string(e.b)
}

// hash returns the state hash of w. It consumes w's own cores: to see the
// output a node has pending (messages, entries, commit advances not yet
// handed out) it takes the node's Ready and never Advances it, so w must
// not be stepped afterwards. For cores w shares with the world it was
// cloned from it uses that world's segments instead, if segs is not nil.
//
// The hash covers, per node: whether it is up; its Status (role, term,
// vote, leader, commit, applied, log bounds, and a leader's per-follower
// progress); the term of every entry in its in-memory log; the vote answers
// it has received as a candidate (mirrored by the explorer, since the core
// keeps its tally hidden); its state machine; its disk (hard state and log
// hash chain); and the contents of its pending Ready. Then the sorted
// in-flight messages, and the checker's history (leaders per term,
// committed and applied indexes) and the proposal and crash counts.
//
// Left out, and so an approximation: core state that neither Status nor a
// Ready shows, such as a follower's in-flight window contents and the
// commit index last sent to it, whether a probe is paused, the heartbeat
// round counter and the election timers. Timers do not matter because
// non-leaders are never ticked (timeouts are the campaign action), and a
// leader's tick only broadcasts heartbeats when check-quorum is off.
func (w *world) hash(segs [][]byte) StateHash {
	var e enc
	for i, h := range w.nodes {
		e.u(h.maxTerm)
		e.u(h.commit)
		d := &h.disk
		e.u(d.hs.Term)
		e.u(d.hs.Vote)
		e.u(d.hs.Commit)
		e.u(uint64(len(d.ents)))
		e.u(d.chain[len(d.chain)-1])
		e.u(uint64(d.synced))
		e.flag(h.up())
		if !h.up() {
			continue
		}
		st := h.st
		if h.votes != nil && h.votesTerm == st.Term && h.votesRole == st.Role {
			for _, id := range slices.Sorted(maps.Keys(h.votes)) {
				e.u(id)
				e.flag(h.votes[id])
			}
		}
		e.u(0xff)
		e.u(h.smApplied)
		e.u(h.smHash)
		if h.shared && segs != nil {
			e.b = append(e.b, segs[i]...)
		} else {
			e.b = coreSegment(e.b, h.core)
		}
	}
	e.u(uint64(len(w.net)))
	for _, f := range w.net {
		e.bytes([]byte(f.key))
	}
	for _, t := range slices.Sorted(maps.Keys(w.chk.leaders)) {
		e.u(t)
		e.u(w.chk.leaders[t])
	}
	e.u(0xff)
	for _, i := range slices.Sorted(maps.Keys(w.chk.commits)) {
		rec := w.chk.commits[i]
		e.u(i)
		e.u(rec.chain)
		e.u(rec.term)
	}
	e.u(0xff)
	for _, i := range slices.Sorted(maps.Keys(w.chk.states)) {
		e.u(i)
		e.u(w.chk.states[i])
	}
	e.u(uint64(w.proposals))
	e.u(uint64(w.crashes))
	var s StateHash
	f := fnv.New128a()
	f.Write(e.b)
	f.Sum(s[:0])
	return s
}

// coreSegment appends the encoding of what core shows: its Status, the
// terms of its log and its pending Ready. It consumes the core (it takes
// the Ready and never Advances it).
func coreSegment(b []byte, core *raft.Node) []byte {
	e := enc{b: b}
	st := core.Status()
	e.u(uint64(st.Role))
	e.u(st.Term)
	e.u(st.Vote)
	e.u(st.Lead)
	e.u(st.Commit)
	e.u(st.Applied)
	e.u(st.FirstIndex)
	e.u(st.LastIndex)
	for _, p := range st.Progress {
		e.u(p.ID)
		e.u(p.Match)
		e.u(p.Next)
		e.u(uint64(p.State))
		e.flag(p.RecentActive)
		e.u(uint64(p.Inflight))
	}
	for i := st.FirstIndex; i <= st.LastIndex; i++ {
		t, _ := core.Term(i)
		e.u(t)
	}
	e.flag(core.HasReady())
	if core.HasReady() {
		e.ready(core.Ready())
	}
	return e.b
}

// segments returns the core segment of every node of w, computed on
// rebuilt copies so that w's cores stay usable (and shareable by clones).
func (w *world) segments() [][]byte {
	segs := make([][]byte, len(w.nodes))
	for i, h := range w.nodes {
		if h.up() {
			segs[i] = coreSegment(nil, w.rebuild(h))
		}
	}
	return segs
}

func (e *enc) ready(rd raft.Ready) {
	if ss := rd.SoftState; ss != nil {
		e.u(uint64(ss.Role))
		e.u(ss.Lead)
	}
	e.u(rd.HardState.Term)
	e.u(rd.HardState.Vote)
	e.u(rd.HardState.Commit)
	e.flag(rd.MustSync)
	e.u(uint64(len(rd.Entries)))
	for _, x := range rd.Entries {
		e.entry(x)
	}
	e.u(uint64(len(rd.CommittedEntries)))
	for _, x := range rd.CommittedEntries {
		e.u(x.Index)
	}
	// Sorted: the network is a multiset, so the order they go out in
	// does not matter.
	keys := make([]string, len(rd.Messages))
	for i, m := range rd.Messages {
		keys[i] = msgKey(m)
	}
	slices.Sort(keys)
	e.u(uint64(len(keys)))
	for _, k := range keys {
		e.bytes([]byte(k))
	}
}
