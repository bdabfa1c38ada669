package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/flotilla-dev/flotilla/raft"
)

// stopRun unwinds a run from a failed check.
type stopRun struct{}

// world is one simulated run: the nodes, the network and the checker.
type world struct {
	opts  Options
	p     params
	rng   *rand.Rand
	sched scheduler
	nodes []*host // nodes[i].id == i+1
	net   network
	chk   checker
	trace tracer

	step     int
	faulty   bool // in the faulty phase (faults and proposals on)
	lastLead uint64
	nextCmd  uint64
	nextRead uint64

	// KV clients and their history (kvclient.go, linear.go).
	clients     []*kvClient
	history     []porcupine.Operation
	annotations []porcupine.Annotation

	res Result
}

func newWorld(opts Options) *world {
	rng := rand.New(rand.NewPCG(uint64(opts.Seed), 0x666c6f74696c6c61))
	p := chooseParams(rng, opts.Nodes)
	w := &world{opts: opts, p: p, rng: rng}
	w.trace = newTracer(opts.Trace, opts.TraceTail)
	w.net = newNetwork(p.nodes + p.spares)
	w.net.dropRate, w.net.dupRate = p.dropRate, p.dupRate
	w.chk = newChecker()
	for i := 1; i <= p.nodes+p.spares; i++ {
		w.nodes = append(w.nodes, &host{w: w, id: uint64(i)})
	}
	w.res = Result{Seed: opts.Seed, Nodes: p.nodes, Params: p.String()}
	return w
}

func (w *world) now() int64 { return w.sched.now }

// record stores a violation without unwinding.
func (w *world) record(property, detail string) {
	if w.res.Violation != nil {
		return
	}
	w.res.Violation = &Violation{
		Seed:     w.opts.Seed,
		Property: property,
		Detail:   detail,
		Step:     w.step,
		Time:     time.Duration(w.now()) * time.Microsecond,
		Tail:     w.trace.tail(),
		Replay:   w.replayCommand(),
	}
}

// fail records a violation and stops the run.
func (w *world) fail(property, format string, args ...any) {
	w.record(property, fmt.Sprintf(format, args...))
	panic(stopRun{})
}

func (w *world) replayCommand() string {
	nodes := ""
	if w.opts.Nodes != 0 {
		nodes = fmt.Sprintf(" --nodes %d", w.opts.Nodes)
	}
	cmd := fmt.Sprintf("go run ./cmd/flotilla sim raft --seed %d --seeds 1%s --steps %d --trace seed-%d.trace",
		w.opts.Seed, nodes, w.opts.Steps, w.opts.Seed)
	if w.opts.ConfigHook != nil {
		cmd += "   (this run also changed the raft.Config through a hook; rerun it from the test that set the hook)"
	}
	return cmd
}

func (w *world) result() Result {
	r := w.res
	r.Steps = w.step
	r.VirtualTime = time.Duration(w.now()) * time.Microsecond
	r.Commits = w.chk.maxCommit
	r.Elections = w.chk.elections
	r.Acked = len(w.chk.acked)
	r.ReadsServed = w.chk.readsDone
	r.MsgsSent, r.MsgsDropped, r.MsgsDuplicated = w.net.sent, w.net.dropped, w.net.duplicated
	return r
}

func (w *world) run() {
	for _, h := range w.nodes {
		h.start(false)
	}
	w.faulty = true
	w.schedule(&event{kind: evPropose}, w.jitter(w.p.proposeEvery))
	w.schedule(&event{kind: evNemesis}, w.jitter(w.p.nemesisEvery))
	w.schedule(&event{kind: evRead}, w.jitter(2*w.p.proposeEvery))
	for i := range 3 {
		c := &kvClient{id: i, session: uint64(i + 1)}
		w.clients = append(w.clients, c)
		w.wakeClient(c, w.jitter(w.p.proposeEvery))
	}
	for w.step < w.opts.Steps {
		w.processNext()
	}
	w.faulty = false
	w.heal()
	w.settle()
	w.closeHistory()
	w.checkLinearizable()
}

// schedule queues e after delay µs.
func (w *world) schedule(e *event, delay int64) {
	e.at = w.now() + delay
	w.sched.push(e)
}

// jitter returns a random delay with mean around d.
func (w *world) jitter(d int64) int64 { return 1 + w.rng.Int64N(2*d) }

func (w *world) processNext() {
	e := w.sched.pop()
	w.step++
	switch e.kind {
	case evTick:
		h := w.nodes[e.node-1]
		if !h.up || h.inc != e.inc {
			return // a tick of a crashed incarnation
		}
		w.trace.add(w.now(), "n%d tick", e.node)
		h.core.Tick()
		h.handleReady()
		w.schedule(&event{kind: evTick, node: h.id, inc: h.inc}, h.tickEvery)
	case evDeliver:
		w.deliver(e.msg)
	case evSync:
		if h := w.nodes[e.node-1]; h.up && h.inc == e.inc {
			h.synced()
		}
	case evPropose:
		if w.faulty {
			w.propose()
			w.schedule(&event{kind: evPropose}, w.jitter(w.p.proposeEvery))
		}
	case evKV:
		w.clientAct(w.clients[e.node], e.inc)
	case evRead:
		if w.faulty {
			w.read()
			w.schedule(&event{kind: evRead}, w.jitter(2*w.p.proposeEvery))
		}
	case evNemesis:
		if w.faulty {
			w.nemesis()
			w.schedule(&event{kind: evNemesis}, w.jitter(w.p.nemesisEvery))
		}
	}
	w.chk.afterStep(w)
}

// propose sends a client command to the node the client believes leads.
func (w *world) propose() {
	target := w.lastLead
	if target == 0 || w.rng.IntN(4) == 0 {
		target = uint64(1 + w.rng.IntN(len(w.nodes)))
	}
	h := w.nodes[target-1]
	if !h.up {
		w.trace.add(w.now(), "client -> n%d: node down", target)
		return
	}
	w.nextCmd++
	cmd := fmt.Appendf(nil, "c%d", w.nextCmd)
	idx, term, err := h.core.Propose(cmd)
	if err != nil {
		var nl *raft.NotLeaderError
		if errors.As(err, &nl) {
			w.lastLead = nl.Leader
		}
		w.trace.add(w.now(), "client -> n%d propose %s: %v", target, cmd, err)
		return
	}
	w.res.Proposals++
	w.lastLead = target
	h.pending[idx] = proposal{term: term, data: cmd}
	w.trace.add(w.now(), "client -> n%d propose %s at %d/%d", target, cmd, term, idx)
	h.handleReady()
}

// read asks a node for a linearizable read point (raft.Node.ReadIndex).
// The answer must be at least every index acknowledged before the read was
// asked: a read that started after a write completed must see it.
func (w *world) read() {
	target := w.lastLead
	if target == 0 || w.rng.IntN(3) == 0 {
		target = uint64(1 + w.rng.IntN(len(w.nodes)))
	}
	h := w.nodes[target-1]
	if !h.up {
		return
	}
	w.nextRead++
	if err := h.core.ReadIndex(w.nextRead); err != nil {
		w.trace.add(w.now(), "client -> n%d read r%d: %v", target, w.nextRead, err)
		return
	}
	w.res.Reads++
	w.chk.reads[w.nextRead] = readReq{node: h.id, minIndex: w.chk.maxAcked}
	w.trace.add(w.now(), "client -> n%d read r%d (acknowledged up to %d)", target, w.nextRead, w.chk.maxAcked)
	h.handleReady()
}

// heal ends the faulty phase: the network is made reliable, partitions heal
// and every crashed node restarts.
func (w *world) heal() {
	w.trace.add(w.now(), "heal: network reliable, all nodes up")
	w.net.healAll()
	w.net.dropRate, w.net.dupRate = 0, 0
	for _, h := range w.nodes {
		h.crashIn = 0
		if !h.up {
			h.start(true)
		}
	}
}

// settleLimit bounds the virtual time the cluster gets after healing to
// elect a leader and apply every acknowledged command everywhere.
func (w *world) settleLimit() int64 {
	return 40 * int64(w.p.electionTicks) * w.p.tickEvery
}

func (w *world) settle() {
	deadline := w.now() + w.settleLimit()
	for w.now() < deadline {
		if w.settled() {
			return
		}
		w.processNext()
	}
	var lag []string
	for _, h := range w.nodes {
		lag = append(lag, fmt.Sprintf("n%d applied=%d role=%v term=%d", h.id, h.sm.applied, h.role, h.term))
	}
	w.fail("liveness", "%v after healing, the cluster did not elect a leader and apply every acknowledged command (up to index %d) on every node: %v",
		time.Duration(w.settleLimit())*time.Microsecond, w.chk.maxAcked, lag)
}

// settled reports whether a leader of the current configuration is up and
// every member of that configuration applied every acknowledged command.
// Removed nodes are left out: a removed leader (without check-quorum) may
// lead its stale term forever, so the leader of the newest term counts.
func (w *world) settled() bool {
	var cs raft.ConfState
	var term uint64
	leader := false
	for _, h := range w.nodes {
		if h.up && h.role == raft.RoleLeader && h.term > term {
			cs, term, leader = h.core.Status().Config, h.term, true
		}
	}
	if !leader {
		return false
	}
	for _, h := range w.nodes {
		if cs.Contains(h.id) && h.sm.applied < w.chk.maxAcked {
			return false
		}
	}
	return true
}

// transferLeadership asks the current leader to hand over to another
// voter (dissertation §3.10), as an operator would before a restart.
func (w *world) transferLeadership() {
	l := w.lastLead
	if l == 0 || !w.nodes[l-1].up || w.nodes[l-1].role != raft.RoleLeader {
		return
	}
	to := uint64(1 + w.rng.IntN(len(w.nodes)))
	h := w.nodes[l-1]
	if err := h.core.TransferLeadership(to); err != nil {
		w.trace.add(w.now(), "operator: transfer n%d -> n%d: %v", l, to, err)
		return
	}
	w.res.Transfers++
	w.trace.add(w.now(), "operator: transfer leadership n%d -> n%d", l, to)
	h.handleReady()
}

// reconfigure proposes a random membership change on the leader: add a
// node as a learner or a voter, promote a learner, remove a member, or
// replace a voter in one joint change (dissertation ch. 4).
func (w *world) reconfigure() {
	l := w.lastLead
	if l == 0 || !w.nodes[l-1].up || w.nodes[l-1].role != raft.RoleLeader {
		return
	}
	h := w.nodes[l-1]
	cs := h.core.Status().Config
	var outside, learners, voters []uint64
	for _, n := range w.nodes {
		switch {
		case slices.Contains(cs.Learners, n.id):
			learners = append(learners, n.id)
		case slices.Contains(cs.Voters, n.id):
			voters = append(voters, n.id)
		case !cs.Contains(n.id):
			outside = append(outside, n.id)
		}
	}
	pick := func(ids []uint64) uint64 { return ids[w.rng.IntN(len(ids))] }
	var cc raft.ConfChange
	change := func(t raft.ConfChangeType, id uint64) {
		cc.Changes = append(cc.Changes, raft.ConfChangeSingle{Type: t, NodeID: id})
	}
	switch k := w.rng.IntN(5); {
	case k == 0 && len(outside) > 0:
		change(raft.AddLearner, pick(outside))
	case k == 1 && len(outside) > 0:
		change(raft.AddVoter, pick(outside))
	case k == 2 && len(learners) > 0:
		change(raft.AddVoter, pick(learners))
	case k == 3 && len(voters)+len(learners) > 1:
		change(raft.RemoveNode, pick(append(voters, learners...)))
	case k == 4 && len(outside) > 0 && len(voters) > 0:
		change(raft.AddVoter, pick(outside))
		change(raft.RemoveNode, pick(voters))
	default:
		return
	}
	if _, _, err := h.core.ProposeConfChange(cc); err != nil {
		w.trace.add(w.now(), "operator: n%d %v: %v", l, cc, err)
		return
	}
	w.res.ConfChanges++
	w.trace.add(w.now(), "operator: n%d proposes %v (from %v)", l, cc, cs)
	h.handleReady()
}

// nemesis injects one fault, chosen at random.
func (w *world) nemesis() {
	switch k := w.rng.IntN(24); {
	case k >= 22:
		w.reconfigure()
	case k >= 20:
		w.transferLeadership()
	case k < 3:
		w.partitionRandom()
	case k < 5:
		w.isolateLeader()
	case k < 7:
		w.bridge()
	case k < 8:
		w.oneWay()
	case k < 10:
		w.net.healAll()
		w.nemesisNote("heal partitions")
	case k < 15:
		w.crashOne()
	default:
		w.restartOne()
	}
}

func (w *world) shuffledIDs() []uint64 {
	ids := make([]uint64, len(w.nodes))
	for i := range ids {
		ids[i] = uint64(i + 1)
	}
	w.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	return ids
}

func (w *world) partitionRandom() {
	ids := w.shuffledIDs()
	cut := 1 + w.rng.IntN(len(ids)-1+boolInt(len(ids) == 1))
	a, b := ids[:min(cut, len(ids))], ids[min(cut, len(ids)):]
	w.net.split(a, b)
	w.res.Partitions++
	w.nemesisNote("partition %v | %v", sorted(a), sorted(b))
}

func (w *world) isolateLeader() {
	l := w.lastLead
	if l == 0 {
		l = uint64(1 + w.rng.IntN(len(w.nodes)))
	}
	var rest []uint64
	for _, h := range w.nodes {
		if h.id != l {
			rest = append(rest, h.id)
		}
	}
	w.net.split([]uint64{l}, rest)
	w.res.Partitions++
	w.nemesisNote("isolate n%d", l)
}

// bridge splits the cluster in two sides that cannot talk, except through
// one node that reaches both.
func (w *world) bridge() {
	if len(w.nodes) < 3 {
		w.partitionRandom()
		return
	}
	ids := w.shuffledIDs()
	bridge, rest := ids[0], ids[1:]
	cut := 1 + w.rng.IntN(len(rest)-1)
	a, b := rest[:cut], rest[cut:]
	w.net.split(a, b)
	w.res.Partitions++
	w.nemesisNote("bridge n%d between %v and %v", bridge, sorted(a), sorted(b))
}

// oneWay drops messages in one direction only between two nodes.
func (w *world) oneWay() {
	ids := w.shuffledIDs()
	if len(ids) < 2 {
		return
	}
	from, to := ids[0], ids[1]
	w.net.blocked[from][to] = true
	w.res.Partitions++
	w.nemesisNote("one-way cut n%d -> n%d", from, to)
}

func (w *world) crashOne() {
	ids := w.shuffledIDs()
	if w.rng.IntN(2) == 0 {
		// Leaders are the interesting ones to kill: it leaves entries of
		// their term on some nodes and not others (Raft Figure 8).
		slices.SortStableFunc(ids, func(a, b uint64) int {
			return boolInt(w.nodes[b-1].role == raft.RoleLeader) - boolInt(w.nodes[a-1].role == raft.RoleLeader)
		})
	}
	for _, id := range ids {
		h := w.nodes[id-1]
		if !h.up {
			continue
		}
		w.res.Crashes++
		if w.rng.IntN(2) == 0 {
			// Crash inside a Ready: after its writes, before its sends.
			h.crashIn = crashPoint(1 + w.rng.IntN(2))
			w.nemesisNote("n%d will crash in a Ready %v, before sending", id, h.crashIn)
			return
		}
		h.crash()
		return
	}
}

func (w *world) restartOne() {
	for _, id := range w.shuffledIDs() {
		if h := w.nodes[id-1]; !h.up {
			h.start(true)
			return
		}
	}
}

func (w *world) deliver(im *inflightMsg) {
	m := im.m
	to := w.nodes[m.To-1]
	if w.net.blocked[m.From][m.To] || !to.up {
		w.net.dropped++
		w.trace.add(w.now(), "drop %v (%s)", m, dropReason(to.up))
		w.reportSnapshot(im, false)
		return
	}
	w.trace.add(w.now(), "deliver %v", m)
	if err := to.core.Step(m); err != nil {
		w.fail("well-formed messages", "n%d rejected %v: %v", m.To, m, err)
	}
	w.reportSnapshot(im, true)
	to.handleReady()
}

func dropReason(up bool) string {
	if !up {
		return "receiver down"
	}
	return "partitioned"
}

// reportSnapshot tells the sender how a snapshot transfer went, as a real
// transport would once the stream finished or broke.
func (w *world) reportSnapshot(im *inflightMsg, ok bool) {
	if im.m.Type != raft.MsgSnap {
		return
	}
	from := w.nodes[im.m.From-1]
	if from.up && from.inc == im.fromInc {
		from.core.ReportSnapshot(im.m.To, ok)
		from.handleReady()
	}
}

// send puts messages from a node on the network, with loss, duplication and
// random latency (which reorders them).
func (w *world) send(from *host, msgs []raft.Message) {
	for _, m := range msgs {
		w.net.sent++
		if w.faulty && w.rng.Float64() < w.net.dropRate {
			w.net.dropped++
			w.trace.add(w.now(), "lose %v", m)
			w.reportSnapshot(&inflightMsg{m: m, fromInc: from.inc}, false)
			continue
		}
		copies := 1
		if w.faulty && w.rng.Float64() < w.net.dupRate {
			copies = 2
			w.net.duplicated++
		}
		for range copies {
			w.schedule(&event{kind: evDeliver, msg: &inflightMsg{m: m, fromInc: from.inc}}, w.latency())
		}
	}
}

// latency draws a one-way delay: mostly near the base, sometimes far above
// it, so messages overtake each other.
func (w *world) latency() int64 {
	base := w.p.latency
	if w.faulty && w.rng.IntN(20) == 0 {
		return base + w.rng.Int64N(30*base)
	}
	return base/2 + w.rng.Int64N(base)
}

func sorted(ids []uint64) []uint64 {
	s := slices.Clone(ids)
	slices.Sort(s)
	return s
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// nemesisNote traces a fault and marks it for the visualization.
func (w *world) nemesisNote(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	w.trace.add(w.now(), "nemesis: %s", msg)
	w.annotate("faults", msg)
}
