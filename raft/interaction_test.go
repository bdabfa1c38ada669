package raft_test

// This file is the harness for the scripted protocol scenarios in
// testdata/*.txt (github.com/cockroachdb/datadriven). Each script drives an
// in-memory cluster through the public API only: every node has an in-memory
// durable store that follows the Ready contract (persist, then send, then
// apply, then Advance), and messages sit in flight until a command delivers
// or drops them. Nothing ticks unless a command says so, so a script is
// deterministic. Regenerate the expected output with
//
//	go test ./raft -run TestInteraction -rewrite
//
// Commands (IDs are positional; read-index is described in read_index.txt,
// transfer-leadership in transfer.txt, join-node and propose-conf-change in
// membership.txt):
//
//	add-nodes N [prevote=true] [checkquorum=true] [lease=true] [max-msg-bytes=B]
//	          [max-inflight=K] [election=T] [heartbeat=T]
//	                          start nodes 1..N (election=10, heartbeat=1 ticks)
//	reset                     throw the cluster away (to start another one)
//	campaign ID               start an election now (Node.Campaign)
//	propose ID DATA...        propose one entry per DATA on node ID
//	tick-heartbeat ID         tick the node HeartbeatTicks times
//	tick-election ID...       leaders alone: tick ElectionTicks times; otherwise
//	                          tick all listed nodes in lockstep until the
//	                          election timer of a non-leader fires
//	process-ready ID...       handle one Ready per node, printing it
//	deliver-msgs [type=T] [from=F] ID...      Step in-flight messages to ID
//	deliver-msgs drop=(ID,...) [type=T] [from=F]  drop them instead
//	stabilize [ID...]         process Readies and deliver until nothing moves
//	isolate ID... / heal      cut nodes off from everybody / undo all cuts;
//	                          messages sent or delivered across a cut are lost
//	compact ID INDEX          snapshot the state machine at INDEX (Node.Compact)
//	report-snapshot ID TO ok|failed   Node.ReportSnapshot on leader ID
//	restart ID                rebuild the node from its durable store only
//	status ID...              print Node.Status
//	raft-log ID...            print the durable store (snapshot, entries)
//	state-machine ID...       print the applied commands
//
// Output conventions: an entry is term/index, followed by :data unless it is
// a no-op; prev=, last= and hint= are term/index too. After every command the
// harness checks Election Safety (one leader per term, Raft §5.2) and State
// Machine Safety (no two nodes apply different entries at an index, §5.4.3).

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/flotilla-dev/flotilla/raft"
)

func TestInteraction(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		if !strings.HasSuffix(path, ".txt") {
			t.Skipf("%s is not a script", path)
		}
		c := newCluster()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return c.run(t, d)
		})
	})
}

// cluster is the scripted world: nodes, the messages in flight between them
// and the partition.
type cluster struct {
	members  []*member // members[i].id == i+1
	inflight []raft.Message
	isolated map[uint64]bool
	// leaders maps a term to the node seen leading it (Election Safety).
	leaders map[uint64]uint64
	// applied maps an index to the first entry applied there by any node
	// (State Machine Safety).
	applied map[uint64]raft.Entry
	// lose, when set, loses the messages it returns true for (Go tests).
	lose func(raft.Message) bool
}

func newCluster() *cluster {
	return &cluster{isolated: map[uint64]bool{}, leaders: map[uint64]uint64{}, applied: map[uint64]raft.Entry{}}
}

type member struct {
	id    uint64
	cfg   raft.Config // as first started; Rand and Restore are set per boot
	boots uint64
	node  *raft.Node
	store store
	sm    stateMachine
}

// store is a member's stable storage: what survives a restart.
type store struct {
	hs   raft.HardState
	snap *raft.Snapshot
	ents []raft.Entry // contiguous, after snap
}

func (s *store) snapIndex() uint64 {
	if s.snap == nil {
		return 0
	}
	return s.snap.Meta.Index
}

// persist is step 1 of the Ready contract.
func (s *store) persist(rd raft.Ready) error {
	if rd.Snapshot != nil {
		s.snap, s.ents = rd.Snapshot, nil
	}
	if len(rd.Entries) > 0 {
		first, base := rd.Entries[0].Index, s.snapIndex()
		if first <= base || first > base+uint64(len(s.ents))+1 {
			return fmt.Errorf("entries from %d do not attach to the stored log (%d, %d]", first, base, base+uint64(len(s.ents)))
		}
		keep := first - base - 1
		s.ents = append(s.ents[:keep:keep], rd.Entries...)
	}
	if !rd.HardState.IsEmpty() {
		s.hs = rd.HardState
	}
	return nil
}

// compact stores a snapshot the host took and drops the entries it covers.
func (s *store) compact(snap raft.Snapshot) {
	drop := snap.Meta.Index - s.snapIndex()
	s.ents = slices.Clone(s.ents[min(drop, uint64(len(s.ents))):])
	s.snap = &snap
}

// stateMachine is the host's application: it records each applied command
// with its index, so that a snapshot can be cut at any applied index.
type stateMachine struct {
	applied uint64
	cmds    []command
}

type command struct {
	index uint64
	data  string
}

func (sm *stateMachine) encode(upTo uint64) []byte {
	var parts []string
	for _, c := range sm.cmds {
		if c.index <= upTo {
			parts = append(parts, fmt.Sprintf("%d:%s", c.index, c.data))
		}
	}
	return []byte(strings.Join(parts, " "))
}

// restore replaces the state with a snapshot's image (made by encode).
func (sm *stateMachine) restore(s *raft.Snapshot) {
	*sm = stateMachine{applied: s.Meta.Index}
	for _, f := range strings.Fields(string(s.Data)) {
		idx, data, _ := strings.Cut(f, ":")
		i, _ := strconv.ParseUint(idx, 10, 64)
		sm.cmds = append(sm.cmds, command{i, data})
	}
}

func (c *cluster) run(t *testing.T, d *datadriven.TestData) string {
	var w strings.Builder
	if d.Cmd != "add-nodes" && d.Cmd != "reset" && len(c.members) == 0 {
		d.Fatalf(t, "no cluster: add-nodes first")
	}
	each := func(f func(*member)) {
		for _, m := range c.args(t, d) {
			f(m)
		}
	}
	switch d.Cmd {
	case "add-nodes":
		c.addNodes(t, d)
	case "reset":
		*c = *newCluster()
	case "campaign":
		for _, m := range c.args(t, d) {
			m.node.Campaign()
			fmt.Fprintln(&w, roleLine(m))
		}
	case "propose":
		c.propose(t, d, &w)
	case "tick-heartbeat":
		for _, m := range c.args(t, d) {
			for range m.cfg.HeartbeatTicks {
				m.node.Tick()
			}
			fmt.Fprintln(&w, roleLine(m))
		}
	case "tick-election":
		c.tickElection(t, d, &w, c.args(t, d))
	case "process-ready":
		each(func(m *member) { c.processReady(t, &w, m) })
	case "deliver-msgs":
		c.deliverCmd(t, d, &w)
	case "stabilize":
		c.stabilize(t, &w, c.args(t, d))
	case "isolate":
		each(func(m *member) { c.isolated[m.id] = true })
	case "heal":
		clear(c.isolated)
	case "compact":
		c.compact(t, d, &w)
	case "report-snapshot":
		pos := positional(d)
		if len(pos) != 3 || (pos[2] != "ok" && pos[2] != "failed") {
			d.Fatalf(t, "report-snapshot LEADER FOLLOWER ok|failed")
		}
		m, to := c.member(t, d, pos[0]), c.member(t, d, pos[1])
		m.node.ReportSnapshot(to.id, pos[2] == "ok")
		writeStatus(&w, m.node.Status())
	case "restart":
		for _, m := range c.args(t, d) {
			c.boot(t, m)
			fmt.Fprintf(&w, "%s (durable: term=%d vote=%s commit=%d, %d entries after snapshot %d)\n",
				roleLine(m), m.store.hs.Term, idName(m.store.hs.Vote), m.store.hs.Commit, len(m.store.ents), m.store.snapIndex())
		}
	case "join-node":
		c.joinNode(t, d, &w)
	case "propose-conf-change":
		c.proposeConfChange(t, d, &w)
	case "transfer-leadership":
		pos := positional(d)
		var to uint64
		d.ScanArgs(t, "to", &to)
		if len(pos) != 1 {
			d.Fatalf(t, "transfer-leadership NODE to=ID")
		}
		m := c.member(t, d, pos[0])
		if err := m.node.TransferLeadership(to); err != nil {
			fmt.Fprintf(&w, "%d: %v\n", m.id, err)
		} else {
			fmt.Fprintln(&w, roleLine(m))
		}
	case "read-index":
		pos := positional(d)
		var id uint64
		d.ScanArgs(t, "id", &id)
		if len(pos) != 1 {
			d.Fatalf(t, "read-index NODE id=N")
		}
		m := c.member(t, d, pos[0])
		if err := m.node.ReadIndex(id); err != nil {
			fmt.Fprintf(&w, "%d: %v\n", m.id, err)
		} else {
			fmt.Fprintln(&w, roleLine(m))
		}
	case "status":
		each(func(m *member) { writeStatus(&w, m.node.Status()) })
	case "raft-log":
		each(func(m *member) { writeStore(&w, m) })
	case "state-machine":
		each(func(m *member) {
			fmt.Fprintf(&w, "%d: applied=%d commands=[%s]\n", m.id, m.sm.applied, m.sm.encode(m.sm.applied))
		})
	default:
		d.Fatalf(t, "unknown command %q", d.Cmd)
	}
	c.checkSafety(t, d)
	if w.Len() == 0 {
		return "ok\n"
	}
	return w.String()
}

// positional returns the arguments that have no value, in order.
func positional(d *datadriven.TestData) []string {
	var out []string
	for _, a := range d.CmdArgs {
		if len(a.Vals) == 0 {
			out = append(out, a.Key)
		}
	}
	return out
}

func (c *cluster) member(t *testing.T, d *datadriven.TestData, s string) *member {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 || id > uint64(len(c.members)) {
		d.Fatalf(t, "%q is not a node ID in 1..%d", s, len(c.members))
	}
	return c.members[id-1]
}

// args returns the members named by the positional arguments, or every
// member when there are none.
func (c *cluster) args(t *testing.T, d *datadriven.TestData) []*member {
	pos := positional(d)
	if len(pos) == 0 && (d.Cmd == "stabilize" || d.Cmd == "status" || d.Cmd == "raft-log" || d.Cmd == "state-machine") {
		return c.members
	}
	if len(pos) == 0 {
		d.Fatalf(t, "%s needs node IDs", d.Cmd)
	}
	var ms []*member
	for _, s := range pos {
		ms = append(ms, c.member(t, d, s))
	}
	return ms
}

func (c *cluster) addNodes(t *testing.T, d *datadriven.TestData) {
	if len(c.members) > 0 {
		d.Fatalf(t, "the cluster exists already (reset first)")
	}
	pos := positional(d)
	n := 0
	if len(pos) == 1 {
		n, _ = strconv.Atoi(pos[0])
	}
	if n < 1 {
		d.Fatalf(t, "add-nodes N: N must be a positive node count")
	}
	tmpl := raft.Config{ElectionTicks: 10, HeartbeatTicks: 1}
	d.MaybeScanArgs(t, "prevote", &tmpl.PreVote)
	d.MaybeScanArgs(t, "checkquorum", &tmpl.CheckQuorum)
	d.MaybeScanArgs(t, "lease", &tmpl.LeaseReads)
	d.MaybeScanArgs(t, "max-msg-bytes", &tmpl.MaxMsgBytes)
	d.MaybeScanArgs(t, "max-inflight", &tmpl.MaxInflightMsgs)
	d.MaybeScanArgs(t, "election", &tmpl.ElectionTicks)
	d.MaybeScanArgs(t, "heartbeat", &tmpl.HeartbeatTicks)
	c.start(t, n, tmpl)
}

// start adds nodes 1..n, all voters, configured like tmpl.
func (c *cluster) start(t testing.TB, n int, tmpl raft.Config) {
	for i := range n {
		tmpl.Peers = append(tmpl.Peers, uint64(i+1))
	}
	for i := range n {
		cfg := tmpl
		cfg.ID = uint64(i + 1)
		m := &member{id: cfg.ID, cfg: cfg}
		c.members = append(c.members, m)
		c.boot(t, m)
	}
}

// boot (re)starts m from its durable store. Everything not in the store (the
// unstable log, queued messages, the state machine) is lost; the state
// machine is rebuilt from the stored snapshot and re-applies the rest.
func (c *cluster) boot(t testing.TB, m *member) {
	cfg := m.cfg
	cfg.Rand = rand.New(rand.NewPCG(m.id, m.boots))
	m.boots++
	m.sm = stateMachine{}
	if m.boots > 1 {
		cfg.Restore = &raft.PersistedState{HardState: m.store.hs, Snapshot: m.store.snap, Entries: slices.Clone(m.store.ents)}
		if m.store.snap != nil {
			m.sm.restore(m.store.snap)
		}
	}
	n, err := raft.New(cfg)
	if err != nil {
		t.Fatalf("starting node %d: %v", m.id, err)
	}
	m.node = n
}

func (c *cluster) propose(t *testing.T, d *datadriven.TestData, w *strings.Builder) {
	pos := positional(d)
	if len(pos) < 2 {
		d.Fatalf(t, "propose ID DATA...")
	}
	m := c.member(t, d, pos[0])
	for _, data := range pos[1:] {
		idx, term, err := m.node.Propose([]byte(data))
		if err != nil {
			fmt.Fprintf(w, "%d: propose %s: error: %v\n", m.id, data, err)
			continue
		}
		fmt.Fprintf(w, "%d: proposed %s at %d/%d\n", m.id, data, term, idx)
	}
}

func (c *cluster) tickElection(t *testing.T, d *datadriven.TestData, w *strings.Builder, ms []*member) {
	allLeaders := true
	for _, m := range ms {
		allLeaders = allLeaders && m.node.Status().Role == raft.RoleLeader
	}
	if allLeaders {
		for _, m := range ms {
			for range m.cfg.ElectionTicks {
				m.node.Tick()
			}
			fmt.Fprintln(w, roleLine(m))
		}
		return
	}
	for _, m := range ms {
		if m.node.Status().Role != raft.RoleLeader && m.node.HasReady() {
			d.Fatalf(t, "node %d has a Ready pending; process-ready it first, so that its election is visible", m.id)
		}
	}
	for k := 1; k <= 2*ms[0].cfg.ElectionTicks; k++ {
		var fired []string
		for _, m := range ms {
			watch := m.node.Status().Role != raft.RoleLeader && !m.node.HasReady()
			m.node.Tick()
			if watch && m.node.HasReady() {
				fired = append(fired, strconv.FormatUint(m.id, 10))
			}
		}
		if len(fired) > 0 {
			fmt.Fprintf(w, "after %d ticks the election timeout of %s fired\n", k, strings.Join(fired, ", "))
			for _, m := range ms {
				fmt.Fprintln(w, roleLine(m))
			}
			return
		}
	}
	d.Fatalf(t, "no election timeout fired within 2*ElectionTicks ticks")
}

// processReady handles one Ready of m in the order the contract asks.
func (c *cluster) processReady(t testing.TB, w *strings.Builder, m *member) {
	if !m.node.HasReady() {
		fmt.Fprintf(w, "> %d has no Ready\n", m.id)
		return
	}
	rd := m.node.Ready()
	fmt.Fprintf(w, "> %d handling Ready\n", m.id)
	lost := make([]bool, len(rd.Messages))
	for i, msg := range rd.Messages {
		lost[i] = c.cut(msg)
	}
	writeReady(w, rd, lost)
	if err := m.store.persist(rd); err != nil {
		t.Fatalf("node %d: persisting Ready: %v", m.id, err)
	}
	for i, msg := range rd.Messages {
		if !lost[i] {
			c.inflight = append(c.inflight, msg)
		}
	}
	if rd.Snapshot != nil {
		m.sm.restore(rd.Snapshot)
	}
	for _, e := range rd.CommittedEntries {
		if e.Index != m.sm.applied+1 {
			t.Fatalf("node %d: committed entry %d handed out after applied index %d", m.id, e.Index, m.sm.applied)
		}
		if prev, ok := c.applied[e.Index]; ok && (prev.Term != e.Term || string(prev.Data) != string(e.Data)) {
			t.Fatalf("State Machine Safety violated: node %d applies %s at index %d, another node applied %s",
				m.id, fmtEntries(e), e.Index, fmtEntries(prev))
		}
		c.applied[e.Index] = e
		m.sm.applied = e.Index
		if len(e.Data) > 0 && e.Type == raft.EntryNormal {
			m.sm.cmds = append(m.sm.cmds, command{e.Index, string(e.Data)})
		}
	}
	m.node.Advance(rd)
}

type msgFilter struct {
	typ  string
	from uint64
}

func (f msgFilter) match(m raft.Message) bool {
	return (f.typ == "" || m.Type.String() == f.typ) && (f.from == 0 || m.From == f.from)
}

func (c *cluster) deliverCmd(t *testing.T, d *datadriven.TestData, w *strings.Builder) {
	var f msgFilter
	d.MaybeScanArgs(t, "type", &f.typ)
	d.MaybeScanArgs(t, "from", &f.from)
	if arg, ok := d.Arg("drop"); ok {
		for _, s := range arg.Vals {
			to := c.member(t, d, s).id
			for _, m := range c.take(to, f) {
				fmt.Fprintf(w, "dropped: %s\n", fmtMsg(m))
			}
		}
	} else {
		for _, m := range c.args(t, d) {
			c.deliver(w, m, f)
		}
	}
	if w.Len() == 0 {
		fmt.Fprintln(w, "no messages")
	}
}

// take removes the in-flight messages to node to that match f.
func (c *cluster) take(to uint64, f msgFilter) []raft.Message {
	var mine, rest []raft.Message
	for _, m := range c.inflight {
		if m.To == to && f.match(m) {
			mine = append(mine, m)
		} else {
			rest = append(rest, m)
		}
	}
	c.inflight = rest
	return mine
}

// deliver steps the messages in flight to m, dropping those that cross the
// partition. It reports whether there were any.
func (c *cluster) deliver(w *strings.Builder, m *member, f msgFilter) bool {
	msgs := c.take(m.id, f)
	if len(msgs) == 0 {
		return false
	}
	fmt.Fprintf(w, "> %d receiving messages\n", m.id)
	for _, msg := range msgs {
		if c.cut(msg) {
			fmt.Fprintf(w, "  %s  (lost: partition)\n", fmtMsg(msg))
			continue
		}
		fmt.Fprintf(w, "  %s\n", fmtMsg(msg))
		if err := m.node.Step(msg); err != nil {
			fmt.Fprintf(w, "  error: %v\n", err)
		}
	}
	return true
}

// cut reports whether the partition separates m's sender from its receiver.
// Messages are lost both when sent across it and when delivered across it.
func (c *cluster) cut(m raft.Message) bool {
	return c.isolated[m.From] || c.isolated[m.To] || (c.lose != nil && c.lose(m))
}

// stabilize alternates Ready handling and delivery on ms until neither has
// anything left to do.
func (c *cluster) stabilize(t testing.TB, w *strings.Builder, ms []*member) {
	for range 1000 {
		moved := false
		for _, m := range ms {
			if m.node.HasReady() {
				c.processReady(t, w, m)
				moved = true
			}
		}
		for _, m := range ms {
			moved = c.deliver(w, m, msgFilter{}) || moved
		}
		if !moved {
			return
		}
	}
	t.Fatalf("stabilize did not settle in 1000 rounds")
}

func (c *cluster) compact(t *testing.T, d *datadriven.TestData, w *strings.Builder) {
	pos := positional(d)
	if len(pos) != 2 {
		d.Fatalf(t, "compact ID INDEX")
	}
	m := c.member(t, d, pos[0])
	idx, _ := strconv.ParseUint(pos[1], 10, 64)
	snap, err := m.node.Compact(idx, m.sm.encode(idx))
	if err != nil {
		fmt.Fprintf(w, "%d: compact %d: error: %v\n", m.id, idx, err)
		return
	}
	m.store.compact(snap)
	fmt.Fprintf(w, "%d: snapshot at %d/%d data=%q\n", m.id, snap.Meta.Term, snap.Meta.Index, snap.Data)
}

// checkSafety fails the script if two nodes lead one term (Raft §5.2).
func (c *cluster) checkSafety(t *testing.T, d *datadriven.TestData) {
	for _, m := range c.members {
		st := m.node.Status()
		if st.Role != raft.RoleLeader {
			continue
		}
		if prev, ok := c.leaders[st.Term]; ok && prev != m.id {
			d.Fatalf(t, "Election Safety violated: nodes %d and %d both lead term %d", prev, m.id, st.Term)
		}
		c.leaders[st.Term] = m.id
	}
}
