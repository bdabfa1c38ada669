package explore

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"

	"github.com/flotilla-dev/flotilla/raft"
)

// ActionKind names one kind of step the explorer can take.
type ActionKind uint8

const (
	// ActCampaign makes a node's election timeout fire (raft.Node.Campaign).
	// Followers and candidates are never ticked: timeouts are this explicit
	// action, so no hidden timer counts a state apart.
	ActCampaign ActionKind = iota + 1
	// ActHeartbeat ticks a leader once; with HeartbeatTicks 1 it broadcasts
	// heartbeats.
	ActHeartbeat
	// ActPropose proposes a new command on a leader.
	ActPropose
	// ActReady handles one Ready of a node: persist, send, apply, Advance.
	ActReady
	// ActDeliver delivers the in-flight message Msg and removes it.
	ActDeliver
	// ActDuplicate delivers a copy of message Msg and leaves it in flight,
	// so it can be delivered again later.
	ActDuplicate
	// ActDrop loses in-flight message Msg.
	ActDrop
	// ActCrash crashes a node: it loses everything it did not persist,
	// including the messages it had not sent yet.
	ActCrash
	// ActRestart restarts a crashed node from its durable state.
	ActRestart
)

var actionNames = [...]string{
	ActCampaign: "campaign", ActHeartbeat: "heartbeat", ActPropose: "propose", ActReady: "ready",
	ActDeliver: "deliver", ActDuplicate: "duplicate", ActDrop: "drop", ActCrash: "crash", ActRestart: "restart",
}

func (k ActionKind) String() string {
	if int(k) < len(actionNames) && actionNames[k] != "" {
		return actionNames[k]
	}
	return fmt.Sprintf("ActionKind(%d)", uint8(k))
}

// Action is one step from a world state. Node is a node ID (for the node
// actions); Msg is a position in the sorted multiset of in-flight messages
// (for deliver, duplicate and drop). Positions are stable under replay
// because the world is deterministic.
type Action struct {
	Kind ActionKind
	Node uint8
	Msg  uint16
}

func (a Action) isMsg() bool {
	return a.Kind == ActDeliver || a.Kind == ActDuplicate || a.Kind == ActDrop
}

// flight is one in-flight message with its canonical encoding, which orders
// the network and feeds the state hash.
type flight struct {
	key string
	m   raft.Message
}

// disk is what a node keeps across a crash: everything its Readies asked
// it to persist (the explorer syncs every write at once).
type disk struct {
	hs   raft.HardState
	ents []raft.Entry
	// chain[i] is the hash chain over ents[:i]; chain[0] is 0.
	chain []uint64
	// synced counts the entries that survive a crash: all of them, except
	// on a host with Options.BrokenEntries.
	synced int
}

func (d *disk) chainAt(i uint64) (uint64, bool) {
	if i > uint64(len(d.ents)) {
		return 0, false
	}
	return d.chain[i], true
}

// host runs one raft core and its durable storage.
type host struct {
	id   uint64
	inc  uint64 // incarnation, bumped at every start; seeds the core's Rand
	core *raft.Node
	// st is core.Status(), refreshed after every action that touches the
	// core (Status is not cheap, and most actions touch one node).
	st raft.Status
	// shared marks a core borrowed from the world this one was cloned
	// from: it may be read (Status, HasReady, Term) but not stepped until
	// own rebuilds a private copy.
	shared bool
	// boot is the disk the current incarnation started from (nil for the
	// first start) and inputs everything fed to its core since: together
	// they rebuild the core, which cannot be copied.
	boot   *raft.PersistedState
	inputs []input
	disk   disk
	// smApplied and smHash are the state machine: a hash chain over the
	// applied commands. They are lost in a crash (no snapshots are taken)
	// and rebuilt by re-applying the log after a restart.
	smApplied, smHash uint64
	// votes mirrors the vote answers delivered to this node as a candidate
	// in its current term and role: the core keeps them hidden.
	votes     map[uint64]bool
	votesTerm uint64
	votesRole raft.Role
	maxTerm   uint64 // the highest term of this incarnation
	commit    uint64 // the highest commit index it persisted
}

// inputKind names a call the host made on its core.
type inputKind uint8

const (
	inCampaign inputKind = iota + 1
	inTick
	inPropose
	inReady // Ready, then Advance with it
	inStep
)

// input is one call on a core, recorded to rebuild it.
type input struct {
	kind inputKind
	data []byte
	msg  raft.Message
}

func (h *host) up() bool { return h.core != nil }

// world is one state of the explored system: the nodes, their disks, the
// network and the history the invariants are checked against.
type world struct {
	o     *Options
	nodes []*host
	net   []flight
	chk   checker
	// proposals and crashes count the bounded actions taken so far.
	proposals, crashes int
	// trace renders each action taken, when tracing.
	trace []string
	// tracing makes step record a description of each action.
	tracing bool
	// touched is the host whose core the current action steps.
	touched *host
}

func newWorld(o *Options) *world {
	w := &world{o: o, chk: newChecker()}
	for i := range o.Nodes {
		h := &host{id: uint64(i + 1), disk: disk{chain: []uint64{0}}}
		w.nodes = append(w.nodes, h)
		w.start(h, false)
	}
	return w
}

func (w *world) peers() []uint64 {
	ids := make([]uint64, w.o.Nodes)
	for i := range ids {
		ids[i] = uint64(i + 1)
	}
	return ids
}

// start boots h fresh or, with restart, from its disk.
func (w *world) start(h *host, restart bool) {
	h.inc++
	h.boot, h.inputs = nil, nil
	if restart {
		h.boot = &raft.PersistedState{HardState: h.disk.hs, Entries: slices.Clip(h.disk.ents)}
	}
	core, err := w.newCore(h)
	if err != nil {
		w.chk.fail("restart from durable state", "n%d: %v", h.id, err)
		return
	}
	h.core, h.shared = core, false
	h.st = core.Status()
	h.smApplied, h.smHash = 0, 0
	h.votes = nil
	// A term the node had in memory only was never seen by anyone.
	h.maxTerm = h.disk.hs.Term
}

func (w *world) newCore(h *host) (*raft.Node, error) {
	cfg := raft.Config{
		ID:             h.id,
		Peers:          w.peers(),
		ElectionTicks:  3,
		HeartbeatTicks: 1,
		Rand:           rand.New(rand.NewPCG(h.id, h.inc)),
		PreVote:        w.o.PreVote,
	}
	if b := h.boot; b != nil {
		cfg.Restore = &raft.PersistedState{HardState: b.HardState, Entries: slices.Clone(b.Entries)}
	}
	return raft.New(cfg)
}

// rebuild returns a new core in the state of h's: the same incarnation
// fed the same inputs. The core is deterministic, so it is a copy.
func (w *world) rebuild(h *host) *raft.Node {
	core, err := w.newCore(h)
	if err != nil {
		panic(fmt.Sprintf("explore: rebuilding n%d, which started before: %v", h.id, err))
	}
	for _, in := range h.inputs {
		switch in.kind {
		case inCampaign:
			core.Campaign()
		case inTick:
			core.Tick()
		case inPropose:
			_, _, _ = core.Propose(in.data)
		case inReady:
			core.Advance(core.Ready())
		case inStep:
			_ = core.Step(in.msg)
		}
	}
	return core
}

// own gives h a private core before the world steps it, and records the
// call about to be made.
func (w *world) own(h *host, in input) {
	if h.shared {
		h.core, h.shared = w.rebuild(h), false
	}
	h.inputs = append(h.inputs, in)
	w.touched = h
}

// clone returns a copy of w that shares its cores (read-only until owned)
// and its slices (copied on append).
func (w *world) clone() *world {
	c := &world{o: w.o, net: slices.Clone(w.net), proposals: w.proposals, crashes: w.crashes}
	c.chk = checker{leaders: maps.Clone(w.chk.leaders), commits: maps.Clone(w.chk.commits), states: maps.Clone(w.chk.states)}
	for _, h := range w.nodes {
		d := *h
		d.shared = h.core != nil
		d.inputs = slices.Clip(h.inputs)
		d.disk.ents, d.disk.chain = slices.Clip(h.disk.ents), slices.Clip(h.disk.chain)
		d.votes = maps.Clone(h.votes)
		c.nodes = append(c.nodes, &d)
	}
	return c
}

// enabled lists the actions possible in w, in a fixed order.
func (w *world) enabled() []Action {
	var acts []Action
	o := w.o
	for _, h := range w.nodes {
		id := uint8(h.id)
		if !h.up() {
			acts = append(acts, Action{Kind: ActRestart, Node: id})
			continue
		}
		st := h.st
		quiet := len(w.net) < o.MaxInFlight
		switch {
		case st.Role == raft.RoleLeader:
			if quiet && o.Heartbeats {
				acts = append(acts, Action{Kind: ActHeartbeat, Node: id})
			}
			if w.proposals < o.MaxProposals {
				acts = append(acts, Action{Kind: ActPropose, Node: id})
			}
		case quiet && st.Term < uint64(o.MaxTerm):
			acts = append(acts, Action{Kind: ActCampaign, Node: id})
		}
		if !o.AutoReady && h.core.HasReady() {
			acts = append(acts, Action{Kind: ActReady, Node: id})
		}
		if w.crashes < o.MaxCrashes {
			acts = append(acts, Action{Kind: ActCrash, Node: id})
		}
	}
	for k, f := range w.net {
		if k > 0 && w.net[k-1].key == f.key {
			continue // the same message again: the same successors
		}
		if w.nodes[f.m.To-1].up() {
			acts = append(acts, Action{Kind: ActDeliver, Msg: uint16(k)})
			if o.Duplicates {
				acts = append(acts, Action{Kind: ActDuplicate, Msg: uint16(k)})
			}
		}
		if o.Drops {
			acts = append(acts, Action{Kind: ActDrop, Msg: uint16(k)})
		}
	}
	return acts
}

// step takes action a and checks the invariants after it.
func (w *world) step(a Action) {
	if w.tracing {
		w.trace = append(w.trace, w.describe(a))
	}
	var h *host
	if !a.isMsg() {
		h = w.nodes[a.Node-1]
	}
	switch a.Kind {
	case ActCampaign:
		w.own(h, input{kind: inCampaign})
		h.core.Campaign()
	case ActHeartbeat:
		w.own(h, input{kind: inTick})
		h.core.Tick()
	case ActPropose:
		w.proposals++
		data := fmt.Appendf(nil, "c%d", w.proposals)
		w.own(h, input{kind: inPropose, data: data})
		if _, _, err := h.core.Propose(data); err != nil {
			w.chk.fail("propose on a leader", "n%d: %v", h.id, err)
		}
	case ActReady:
		w.own(h, input{kind: inReady})
		w.handleReady(h)
	case ActDeliver, ActDuplicate:
		f := w.net[a.Msg]
		if a.Kind == ActDeliver {
			w.net = slices.Delete(w.net, int(a.Msg), int(a.Msg)+1)
		}
		to := w.nodes[f.m.To-1]
		w.own(to, input{kind: inStep, msg: f.m})
		to.observeVote(f.m)
		if err := to.core.Step(f.m); err != nil {
			w.chk.fail("step a message", "n%d: %v: %v", to.id, f.m, err)
		}
	case ActDrop:
		w.net = slices.Delete(w.net, int(a.Msg), int(a.Msg)+1)
	case ActCrash:
		w.crashes++
		h.core, h.shared, h.boot, h.inputs = nil, false, nil, nil
		d := &h.disk
		d.ents, d.chain = d.ents[:d.synced:d.synced], d.chain[:d.synced+1:d.synced+1]
		// The commit index went to the same unsynced file.
		d.hs.Commit = min(d.hs.Commit, uint64(d.synced))
		h.st = raft.Status{}
	case ActRestart:
		w.start(h, true)
		w.touched = h
	}
	if h := w.touched; h != nil && h.up() {
		for w.o.AutoReady && h.core.HasReady() && w.chk.violation == nil {
			h.st = h.core.Status()
			w.own(h, input{kind: inReady})
			w.handleReady(h)
		}
		h.st = h.core.Status()
	}
	w.touched = nil
	w.chk.afterStep(w)
}

// observeVote records a vote answer for a candidate in the term it is
// campaigning in, mirroring the core's hidden tally.
func (h *host) observeVote(m raft.Message) {
	if m.Type != raft.MsgVoteResp && m.Type != raft.MsgPreVoteResp {
		return
	}
	st := h.st
	if st.Role != raft.RoleCandidate && st.Role != raft.RolePreCandidate {
		return
	}
	if h.votes == nil || h.votesTerm != st.Term || h.votesRole != st.Role {
		h.votes, h.votesTerm, h.votesRole = map[uint64]bool{}, st.Term, st.Role
	}
	if _, seen := h.votes[m.From]; !seen {
		h.votes[m.From] = !m.Reject
	}
}

// handleReady follows raft.Ready's contract: persist, send, apply, Advance.
// A broken host does not persist the vote (Options.BrokenHost) or loses
// its entries in a crash (Options.BrokenEntries).
func (w *world) handleReady(h *host) {
	rd := h.core.Ready()
	w.persist(h, rd)
	for _, m := range rd.Messages {
		w.send(m)
	}
	for _, e := range rd.CommittedEntries {
		if e.Index != h.smApplied+1 {
			w.chk.fail("entries applied in order", "n%d applied %d, then got entry %d", h.id, h.smApplied, e.Index)
		}
		h.smApplied, h.smHash = e.Index, chainHash(h.smHash, 0, e.Index, e.Data)
		w.chk.applied(h)
	}
	h.core.Advance(rd)
}

func (w *world) persist(h *host, rd raft.Ready) {
	d := &h.disk
	if len(rd.Entries) > 0 {
		first := rd.Entries[0].Index
		if first == 0 || first > uint64(len(d.ents))+1 {
			w.chk.fail("Ready entries extend the log", "n%d: entries from %d onto a disk log of %d", h.id, first, len(d.ents))
			return
		}
		if h.st.Role == raft.RoleLeader && first <= uint64(len(d.ents)) {
			w.chk.fail("Leader Append-Only", "leader n%d overwrites its entries from index %d (last %d)", h.id, first, len(d.ents))
		}
		keep := first - 1
		d.ents = append(d.ents[:keep:keep], rd.Entries...)
		d.chain = d.chain[: keep+1 : keep+1]
		d.synced = min(d.synced, int(keep))
		for _, e := range rd.Entries {
			d.chain = append(d.chain, chainHash(d.chain[len(d.chain)-1], e.Term, e.Index, e.Data))
		}
		if !w.o.BrokenEntries {
			d.synced = len(d.ents)
		}
	}
	if hs := rd.HardState; !hs.IsEmpty() {
		if w.o.BrokenHost {
			hs.Vote = d.hs.Vote
			if hs.Term != d.hs.Term {
				hs.Vote = raft.None
			}
		}
		if hs.Commit < d.hs.Commit {
			w.chk.fail("commit index never moves back", "n%d persisted commit %d over %d", h.id, hs.Commit, d.hs.Commit)
		}
		if hs.Term < d.hs.Term {
			w.chk.fail("terms never decrease", "n%d persisted term %d over term %d", h.id, hs.Term, d.hs.Term)
		}
		d.hs = hs
		if hs.Commit > h.commit {
			w.chk.committed(h, h.commit, hs.Commit)
			h.commit = hs.Commit
		}
	}
}

// send puts m in flight, keeping the network sorted by canonical key.
func (w *world) send(m raft.Message) {
	f := flight{key: msgKey(m), m: m}
	i, _ := slices.BinarySearchFunc(w.net, f, func(a, b flight) int { return cmp.Compare(a.key, b.key) })
	w.net = slices.Insert(w.net, i, f)
}

// describe renders a for a trace, in the state before it is taken.
func (w *world) describe(a Action) string {
	if a.isMsg() {
		if int(a.Msg) < len(w.net) {
			return fmt.Sprintf("%v %v", a.Kind, w.net[a.Msg].m)
		}
		return fmt.Sprintf("%v #%d", a.Kind, a.Msg)
	}
	return fmt.Sprintf("%v n%d", a.Kind, a.Node)
}

// replay builds the world reached from the initial state by acts.
func replay(o *Options, acts []Action, tracing bool) *world {
	w := newWorld(o)
	w.tracing = tracing
	for _, a := range acts {
		if w.chk.violation != nil {
			break
		}
		w.step(a)
	}
	return w
}
