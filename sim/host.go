package sim

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"

	"github.com/flotilla-dev/flotilla/raft"
)

// host runs one raft core the way a real driver would, over a simulated
// disk that loses whatever was not synced when the node crashes.
type host struct {
	w   *world
	id  uint64
	inc int // incarnation, bumped at every start

	up   bool
	core *raft.Node
	// crashIn makes the node crash inside its next Ready of that kind,
	// after the writes and before it sends or applies anything.
	crashIn   crashPoint
	tickEvery int64

	disk disk
	// cachedCommit is a commit index written without a sync: a crash loses it.
	cachedCommit uint64

	// role, term and lead mirror the core as reported through Ready.
	role       raft.Role
	term, lead uint64
	commit     uint64

	sm      stateMachine
	pending map[uint64]proposal // proposals accepted by this incarnation, by index

	// The KV service (kvapp.go) and its clients' attempts on this
	// incarnation: proposals by index, ReadIndex reads by read ID waiting
	// for confirmation, then for the apply of their index.
	app       *app
	kvPending map[uint64]kvAttempt
	kvReads   map[uint64]kvAttempt
	kvReadsAt map[uint64]kvReadWait
}

// kvReadWait is a confirmed ReadIndex read waiting for its index.
type kvReadWait struct {
	kvAttempt
	index uint64
}

// crashPoint names a moment inside a Ready at which a node may crash.
type crashPoint uint8

const (
	// crashOnEntries: after writing new entries, before sending them.
	crashOnEntries crashPoint = iota + 1
	// crashOnCommit: after learning a new commit index, before telling
	// anyone (a leader dies between committing and replicating on).
	crashOnCommit
)

// matches reports whether rd is a Ready to crash in, for a node whose
// commit index was commit before rd.
func (c crashPoint) matches(rd raft.Ready, commit uint64) bool {
	switch c {
	case crashOnEntries:
		return len(rd.Entries) > 0
	case crashOnCommit:
		return !rd.HardState.IsEmpty() && rd.HardState.Commit > commit
	}
	return false
}

func (c crashPoint) String() string {
	if c == crashOnCommit {
		return "after a commit advance"
	}
	return "after writing entries"
}

type proposal struct {
	term uint64
	data []byte
}

// disk is what survives a crash: synced writes only.
type disk struct {
	hs   raft.HardState
	snap *raft.Snapshot
	ents []raft.Entry
	// chain[i] is the log hash chain at index snapIndex()+i: chain[0] is the
	// snapshot's, chain[k] folds entry k into chain[k-1].
	chain []uint64
	// synced counts the entries of ents that are durable; the rest were
	// written by an asynchronous leader write and not synced yet.
	synced int
}

func (d *disk) snapIndex() uint64 {
	if d.snap == nil {
		return 0
	}
	return d.snap.Meta.Index
}

func (d *disk) lastIndex() uint64 { return d.snapIndex() + uint64(len(d.ents)) }

// syncedLast is the last index that survives a crash.
func (d *disk) syncedLast() uint64 { return d.snapIndex() + uint64(d.synced) }

// sync makes everything written so far durable: the log is sequential.
func (d *disk) sync(h *host) {
	d.synced = len(d.ents)
	if h.cachedCommit > d.hs.Commit {
		d.hs.Commit = h.cachedCommit
	}
	h.cachedCommit = 0
}

// chainAt returns the log hash chain at index i, if the disk holds it.
func (d *disk) chainAt(i uint64) (uint64, bool) {
	s := d.snapIndex()
	if i < s || i > d.lastIndex() {
		return 0, false
	}
	return d.chain[i-s], true
}

// stateMachine is the application: it folds each applied command into a
// hash chain, so equal chains mean equal command sequences.
type stateMachine struct {
	applied uint64
	hash    uint64
}

func chainHash(prev, term, index uint64, data []byte) uint64 {
	h := fnv.New64a()
	var b [24]byte
	binary.LittleEndian.PutUint64(b[0:], prev)
	binary.LittleEndian.PutUint64(b[8:], term)
	binary.LittleEndian.PutUint64(b[16:], index)
	h.Write(b[:])
	h.Write(data)
	return h.Sum64()
}

// snapshot data: applied index, state machine hash, log chain at the
// index, then the KV service's image.
func encodeSnap(sm stateMachine, logChain uint64, appImage []byte) []byte {
	b := make([]byte, 24, 24+len(appImage))
	binary.LittleEndian.PutUint64(b[0:], sm.applied)
	binary.LittleEndian.PutUint64(b[8:], sm.hash)
	binary.LittleEndian.PutUint64(b[16:], logChain)
	return append(b, appImage...)
}

func decodeSnap(b []byte) (stateMachine, uint64) {
	return stateMachine{applied: binary.LittleEndian.Uint64(b[0:]), hash: binary.LittleEndian.Uint64(b[8:])},
		binary.LittleEndian.Uint64(b[16:])
}

// snapApp restores the KV service from snapshot data.
func (h *host) snapApp(b []byte) *app {
	a, err := restoreApp(b[24:])
	if err != nil {
		h.w.fail("KV snapshot restore", "n%d: %v", h.id, err)
	}
	return a
}

// start boots the node from its disk (restart) or fresh.
func (h *host) start(restart bool) {
	w := h.w
	h.inc++
	h.up = true
	h.crashIn = 0
	h.cachedCommit = 0
	h.pending = map[uint64]proposal{}
	h.kvPending, h.kvReads, h.kvReadsAt = map[uint64]kvAttempt{}, map[uint64]kvAttempt{}, map[uint64]kvReadWait{}
	h.sm = stateMachine{}
	h.app = newApp()
	if h.disk.snap != nil {
		h.sm, _ = decodeSnap(h.disk.snap.Data)
		h.app = h.snapApp(h.disk.snap.Data)
	}
	if h.disk.chain == nil {
		h.disk.chain = []uint64{0}
	}
	// The first p.nodes nodes found the cluster; spares join it later.
	var voters []uint64
	if int(h.id) <= w.p.nodes {
		for i := range w.p.nodes {
			voters = append(voters, uint64(i+1))
		}
	}
	cfg := raft.Config{
		ID:              h.id,
		Peers:           voters,
		Join:            voters == nil,
		ElectionTicks:   w.p.electionTicks,
		HeartbeatTicks:  1,
		Rand:            rand.New(rand.NewPCG(uint64(w.opts.Seed), h.id<<32|uint64(h.inc))),
		PreVote:         w.p.preVote,
		CheckQuorum:     w.p.checkQuorum,
		LeaseReads:      w.p.leaseReads,
		MaxMsgBytes:     w.p.maxMsgBytes,
		MaxInflightMsgs: w.p.maxInflight,
		Applied:         h.sm.applied,
	}
	if restart {
		cfg.Restore = &raft.PersistedState{
			HardState: h.disk.hs,
			Snapshot:  h.disk.snap,
			Entries:   slices.Clone(h.disk.ents),
		}
	}
	if w.opts.ConfigHook != nil {
		w.opts.ConfigHook(&cfg)
	}
	core, err := raft.New(cfg)
	if err != nil {
		w.fail("restart from durable state", "n%d: %v", h.id, err)
	}
	h.core = core
	h.role, h.term, h.lead = raft.RoleFollower, h.disk.hs.Term, raft.None
	h.commit = max(h.disk.hs.Commit, h.disk.snapIndex())
	// Clocks run at slightly different rates on different machines.
	h.tickEvery = w.p.tickEvery * int64(95+w.rng.IntN(11)) / 100
	w.trace.add(w.now(), "n%d start (incarnation %d, term %d, commit %d, last %d)",
		h.id, h.inc, h.disk.hs.Term, h.disk.hs.Commit, h.disk.lastIndex())
	w.schedule(&event{kind: evTick, node: h.id, inc: h.inc}, 1+w.rng.Int64N(h.tickEvery))
}

// crash kills the node: everything not synced is lost, including messages
// it had not sent yet and proposals it had accepted.
func (h *host) crash() {
	d := &h.disk
	d.ents, d.chain = d.ents[:d.synced], d.chain[:d.synced+1]
	h.up = false
	h.core = nil
	h.cachedCommit = 0
	h.role, h.lead = 0, 0
	h.w.trace.add(h.w.now(), "n%d crash", h.id)
	h.w.annotate("faults", fmt.Sprintf("n%d crashes", h.id))
}

// handleReady drains the core's Ready queue, following raft.Ready's contract.
func (h *host) handleReady() {
	for h.up && h.core.HasReady() {
		rd := h.core.Ready()
		h.observe(rd)
		crash := h.crashIn.matches(rd, h.commit)
		async := h.asyncWrite(rd)
		h.persist(rd, async)
		if crash {
			h.crash()
			return
		}
		h.w.send(h, rd.Messages)
		h.apply(rd)
		for _, rs := range rd.ReadStates {
			h.w.chk.readState(h.w, h, rs)
			if a, ok := h.kvReads[rs.ID]; ok {
				delete(h.kvReads, rs.ID)
				h.kvReadsAt[rs.ID] = kvReadWait{a, rs.Index}
			}
		}
		h.kvReadsApplied()
		if async {
			h.core.AdvanceAsync(rd)
			h.w.schedule(&event{kind: evSync, node: h.id, inc: h.inc}, h.w.rng.Int64N(3*h.w.p.latency))
		} else {
			h.core.Advance(rd)
			if d := &h.disk; rd.MustSync && d.synced == len(d.ents) && d.synced > 0 {
				// This sync also made an earlier asynchronous write durable
				// (the leader's, its own sync still to come): tell the
				// core, as a real host's sync does (seeds 1078511, 1086389:
				// a compaction at an applied index the disk held but the
				// core did not know durable).
				last := d.ents[len(d.ents)-1]
				h.core.StableTo(last.Index, last.Term)
			}
		}
		h.maybeCompact()
	}
}

// asyncWrite decides whether a Ready's entries are written now and synced
// later (raft.Node.AdvanceAsync): only a leader's, only when term and vote
// are unchanged, and only in seeds that test it.
func (h *host) asyncWrite(rd raft.Ready) bool {
	hs := rd.HardState
	return h.w.p.asyncLeader && h.role == raft.RoleLeader && rd.Snapshot == nil && len(rd.Entries) > 0 &&
		(hs.IsEmpty() || (hs.Term == h.disk.hs.Term && hs.Vote == h.disk.hs.Vote))
}

// synced finishes an asynchronous write: everything written so far is
// durable now, and the core hears of it.
func (h *host) synced() {
	d := &h.disk
	d.sync(h)
	if len(d.ents) == 0 {
		return
	}
	last := d.ents[len(d.ents)-1]
	h.w.trace.add(h.w.now(), "n%d synced to %d/%d", h.id, last.Term, last.Index)
	h.core.StableTo(last.Index, last.Term)
	h.handleReady()
}

// observe mirrors role and term changes and checks Election Safety.
func (h *host) observe(rd raft.Ready) {
	if !rd.HardState.IsEmpty() {
		if rd.HardState.Term < h.term {
			h.w.fail("terms never decrease", "n%d term %d -> %d", h.id, h.term, rd.HardState.Term)
		}
		h.term = rd.HardState.Term
	}
	if ss := rd.SoftState; ss != nil {
		if ss.Role == raft.RoleLeader && h.role != raft.RoleLeader {
			h.w.chk.becameLeader(h.w, h)
			h.w.annotate("leader", fmt.Sprintf("n%d leads term %d", h.id, h.term))
			h.w.lastLead = h.id
		}
		h.role, h.lead = ss.Role, ss.Lead
		h.w.trace.add(h.w.now(), "n%d is %v in term %d (leader n%d)", h.id, ss.Role, h.term, ss.Lead)
	}
}

// persist writes the Ready's snapshot, entries and hard state, and syncs
// them if rd.MustSync and not async (a leader's entries synced later).
func (h *host) persist(rd raft.Ready, async bool) {
	d := &h.disk
	sync := rd.MustSync && !async
	if s := rd.Snapshot; s != nil {
		_, logChain := decodeSnap(s.Data)
		h.w.chk.logEntry(h.w, h, s.Meta.Index, s.Meta.Term, logChain)
		d.snap, d.ents, d.chain, d.synced = s, nil, []uint64{logChain}, 0
	}
	if len(rd.Entries) > 0 {
		first := rd.Entries[0].Index
		if first <= d.snapIndex() || first > d.lastIndex()+1 {
			h.w.fail("Ready entries extend the log", "n%d: entries from %d onto a disk log of (%d, %d]",
				h.id, first, d.snapIndex(), d.lastIndex())
		}
		if h.role == raft.RoleLeader && first <= d.lastIndex() {
			h.w.fail("Leader Append-Only", "leader n%d (term %d) overwrites its entries from index %d (last %d)",
				h.id, h.term, first, d.lastIndex())
		}
		keep := first - d.snapIndex() - 1
		d.ents = append(d.ents[:keep:keep], rd.Entries...)
		d.chain = d.chain[:keep+1]
		d.synced = min(d.synced, int(keep))
		for _, e := range rd.Entries {
			c := chainHash(d.chain[len(d.chain)-1], e.Term, e.Index, e.Data)
			d.chain = append(d.chain, c)
			h.w.chk.logEntry(h.w, h, e.Index, e.Term, c)
		}
	}
	hs := rd.HardState
	if !hs.IsEmpty() {
		if hs.Commit < max(d.hs.Commit, h.cachedCommit) {
			h.w.fail("commit index never moves back", "n%d: commit %d -> %d", h.id, max(d.hs.Commit, h.cachedCommit), hs.Commit)
		}
		if sync {
			d.hs = hs
			h.cachedCommit = 0
		} else {
			// Only the commit index changed: written, not synced.
			if hs.Term != d.hs.Term || hs.Vote != d.hs.Vote {
				h.w.fail("Ready.MustSync", "n%d: term/vote changed %v -> %v without MustSync", h.id, d.hs, hs)
			}
			h.cachedCommit = hs.Commit
		}
		if hs.Commit > h.commit {
			h.w.chk.committed(h.w, h, h.commit, hs.Commit)
			h.commit = hs.Commit
		}
	}
	if sync {
		d.sync(h)
	}
}

// apply installs the snapshot and applies committed entries, checking State
// Machine Safety and acknowledging client proposals.
func (h *host) apply(rd raft.Ready) {
	if s := rd.Snapshot; s != nil {
		sm, _ := decodeSnap(s.Data)
		h.w.chk.appliedState(h.w, h, sm)
		h.sm = sm
		h.app = h.snapApp(s.Data)
		h.w.trace.add(h.w.now(), "n%d installs snapshot %d/%d", h.id, s.Meta.Term, s.Meta.Index)
	}
	for _, e := range rd.CommittedEntries {
		if e.Index != h.sm.applied+1 {
			h.w.fail("entries applied in order", "n%d applied %d, then got entry %d", h.id, h.sm.applied, e.Index)
		}
		h.sm = stateMachine{applied: e.Index, hash: chainHash(h.sm.hash, 0, e.Index, e.Data)}
		h.w.chk.appliedState(h.w, h, h.sm)
		if isKV(e) {
			h.kvApplied(e, h.app.apply(e))
		}
		if p, ok := h.pending[e.Index]; ok {
			delete(h.pending, e.Index)
			if p.term == e.Term && string(p.data) == string(e.Data) {
				h.w.chk.ack(e.Index)
				h.w.trace.add(h.w.now(), "n%d ack %s at %d", h.id, e.Data, e.Index)
			}
		}
	}
}

// maybeCompact takes a snapshot every snapEvery applied entries.
func (h *host) maybeCompact() {
	if !h.up {
		return
	}
	d := &h.disk
	if h.sm.applied < d.snapIndex()+h.w.p.snapEvery || h.sm.applied > d.syncedLast() {
		return
	}
	logChain, ok := d.chainAt(h.sm.applied)
	if !ok {
		h.w.fail("snapshot point on disk", "n%d: applied %d not in disk log (%d, %d]", h.id, h.sm.applied, d.snapIndex(), d.lastIndex())
	}
	snap, err := h.core.Compact(h.sm.applied, encodeSnap(h.sm, logChain, h.app.snapshot()))
	if err != nil {
		h.w.fail("compaction", "n%d: %v", h.id, err)
	}
	cut := snap.Meta.Index - d.snapIndex()
	d.ents = slices.Clone(d.ents[cut:])
	d.chain = slices.Clone(d.chain[cut:])
	d.synced -= int(cut)
	d.snap = &snap
	h.w.trace.add(h.w.now(), "n%d compacts to %d/%d", h.id, snap.Meta.Term, snap.Meta.Index)
}

func (h *host) String() string { return fmt.Sprintf("n%d", h.id) }
