package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flotilla-dev/flotilla/raft"
	"github.com/flotilla-dev/flotilla/transport"
	"github.com/flotilla-dev/flotilla/wal"
)

// Command is one committed client command handed to the state machine.
type Command struct {
	Index, Term uint64
	Data        []byte
}

// StateMachine is the application a Node replicates. The Node calls it from
// its one loop goroutine only, so implementations need no locking for these
// calls (but must lock if other goroutines read their state).
//
// Byte slices are shared, never copied: Command.Data is the log's own copy
// (also sent to followers), Restore's data is the snapshot the node keeps
// and streams to followers, and the slice Snapshot returns is streamed
// later. Implementations must not modify any of them, nor keep a reference
// they later modify.
type StateMachine interface {
	// Apply applies committed commands in log order and returns one result
	// per command. It must be deterministic: every replica applies the same
	// commands and must reach the same state. Apply must not fail; a
	// command the application rejects yields a result that says so.
	Apply(cmds []Command) [][]byte
	// Snapshot returns an image of the state after the last applied command.
	Snapshot() ([]byte, error)
	// Restore replaces the state with a snapshot image.
	Restore(data []byte) error
}

// Errors returned by Propose.
var (
	// ErrStopped: the node stopped. Alone, it means the command never
	// reached the log; a command already in the log when the node stopped
	// gets an error matching both ErrStopped and ErrOutcomeUnknown.
	ErrStopped = errors.New("node: stopped")
	// ErrProposalLost: a leader change overwrote the command's log slot;
	// it was not applied and may be retried.
	ErrProposalLost = errors.New("node: proposal lost to a leader change; retry")
	// ErrOutcomeUnknown: this node can no longer tell whether the command
	// will be applied (a snapshot replaced the log around it, another node
	// may still hold it after a leader change, or the node stopped with it
	// in its log). Check before retrying; services make retries safe with
	// sessions.
	ErrOutcomeUnknown = errors.New("node: outcome unknown; check before retrying")
	// ErrCommandTooLarge: the command exceeds Config.MaxCommandBytes.
	ErrCommandTooLarge = errors.New("node: command too large")
)

// NotLeaderError is returned by Propose on a node that is not the leader.
// LeaderAddr is the leader's peer address, empty when no leader is known.
type NotLeaderError struct {
	Leader     uint64
	LeaderAddr string
}

func (e *NotLeaderError) Error() string {
	if e.Leader == raft.None {
		return "node: not the leader and no leader is known (an election may be under way; retry)"
	}
	return fmt.Sprintf("node: not the leader; node %d at %s is", e.Leader, e.LeaderAddr)
}

// Is makes errors.Is(err, raft.ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == raft.ErrNotLeader }

// Node runs one Raft member: core, WAL, transport and state machine.
type Node struct {
	cfg Config
	log interface {
		Info(string, ...any)
		Warn(string, ...any)
		Error(string, ...any)
	}
	core *raft.Node
	wal  *wal.WAL
	tr   *transport.Transport
	sm   StateMachine

	propc   chan *proposal
	recvc   chan raft.Message
	reportc chan report
	statusc chan chan raft.Status
	stopc   chan struct{}
	exiting chan struct{} // closed when the loop starts to shut down

	// The leader's deferred syncs (syncer.go): requests, results, and the
	// syncer goroutine's exit.
	syncReqc   chan syncPoint
	syncDonec  chan syncResult
	syncerDone chan struct{}
	done       chan struct{}
	stop       sync.Once
	crashed    atomic.Bool // set by crash: stop without the final flush
	noHandOver atomic.Bool // set when the whole cluster stops: no transfer
	err        error       // why the loop ended; read after done is closed
	// term is the term of the last hard state written (or recovered):
	// Term reads it without a round trip to the loop. Written by the loop.
	term atomic.Uint64

	// Loop-owned state.
	waiters   map[uint64]*proposal
	role      raft.Role
	lead      uint64
	persisted raft.HardState
	unsaved   raft.HardState // a commit-only change not yet written
	// unsynced is the last entry written without a sync and not yet
	// handed to the syncer; syncing is set while a sync runs, and
	// syncAgain asks for another one when it ends.
	unsynced           *syncPoint
	written            syncPoint // the last entry written to the WAL
	syncing, syncAgain bool
	applied            uint64
	appliedTerm        uint64 // term of the last applied entry
	snapIndex          uint64
	sinceSnap          int64 // command bytes applied since the last snapshot
	lastSnapBytes      int64 // size of the last snapshot this node took; 0 before the first
	metrics            *Metrics
	lastStatus         raft.Status
	// Reads (read.go): waiting for the core's confirmation by ID, then for
	// the apply of their index; ticks counts the loop's ticks.
	readc         chan *readWaiter
	reads         map[uint64]*readWaiter
	readsApplying []*readWaiter
	nextRead      uint64
	ticks         uint64
	// transferc takes TransferLeadership calls; transfer is the one under
	// way (transfer.go).
	transferc chan transferReq
	transfer  *transferReq
	// The address book (members.go): every member's peer address and
	// service metadata, guarded by membersMu. inConfig is set while the
	// configuration applied last holds this node (a node that joined is
	// outside the configurations before the one that added it);
	// voterCount is the number of voters in force; removed is set once the
	// node applied its own removal.
	membersMu sync.Mutex
	members   map[uint64]Member
	dropPeers map[uint64]uint64 // removed peers to disconnect, at this tick
	// removedAddrs keeps the peer addresses of removed members (loop
	// goroutine only), to reach one that campaigns (reachRemoved).
	removedAddrs map[uint64]string
	// removedIDs are the members removed by changes applied by this
	// process, not added back (membersMu); see Removed.
	removedIDs map[uint64]bool
	inConfig   bool
	voterCount int
	removed    bool
	// syncDelay is an injected delay before every fsync (SetSyncDelay).
	syncDelay atomic.Int64
	// tickStatus is the core's status at the loop's last tick (Status's
	// fallback while the loop is busy).
	tickStatus atomic.Pointer[raft.Status]
}

type proposal struct {
	data        []byte
	conf        *raft.ConfChange // a membership change instead of data
	index, term uint64
	done        chan proposalResult
	start       time.Time
}

type proposalResult struct {
	val []byte
	err error
}

type report struct {
	id       uint64
	snapshot bool
	ok       bool
}

// Start opens the data directory, recovers the WAL and the latest snapshot,
// starts the transport and the loop, and returns the running node.
func Start(cfg Config, sm StateMachine) (*Node, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg: c, log: c.Logger, sm: sm,
		propc:        make(chan *proposal, c.MaxBatch),
		recvc:        make(chan raft.Message, 8192),
		reportc:      make(chan report, 1024),
		statusc:      make(chan chan raft.Status),
		stopc:        make(chan struct{}),
		exiting:      make(chan struct{}),
		syncReqc:     make(chan syncPoint, 1),
		syncDonec:    make(chan syncResult, 1),
		syncerDone:   make(chan struct{}),
		done:         make(chan struct{}),
		waiters:      map[uint64]*proposal{},
		readc:        make(chan *readWaiter, c.MaxBatch),
		reads:        map[uint64]*readWaiter{},
		transferc:    make(chan transferReq),
		members:      map[uint64]Member{},
		dropPeers:    map[uint64]uint64{},
		removedAddrs: map[uint64]string{},
		removedIDs:   map[uint64]bool{},
		inConfig:     !c.Join,
		voterCount:   len(c.Peers),
		metrics:      newMetrics(),
	}
	w, err := wal.Open(c.DataDir, wal.Options{
		ClusterID: c.ClusterID, NodeID: c.ID, NoSync: c.NoSync,
		OnSync: n.metrics.observeSync, Logger: c.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("node %d: opening data directory: %w", c.ID, err)
	}
	n.wal = w
	for id, addr := range c.Peers {
		n.members[id] = Member{ID: id, PeerAddr: addr}
	}
	if n.joinedBefore() {
		n.inConfig = false // until it replays the entry that added it
	}
	if c.Join {
		if err := n.markJoined(); err != nil {
			w.Close()
			return nil, err
		}
	}
	if err := n.recover(); err != nil {
		w.Close()
		return nil, err
	}
	peers := map[uint64]string{}
	for id, m := range n.members {
		peers[id] = m.PeerAddr
	}
	tr, err := transport.New(transport.Config{
		ClusterID: c.ClusterID, NodeID: c.ID, Listen: c.Listen, Peers: peers, Logger: c.Logger,
	}, handler{n})
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("node %d: starting transport: %w", c.ID, err)
	}
	n.tr = tr
	go n.runSyncer()
	go n.run()
	return n, nil
}

// recover rebuilds the core and the state machine from the WAL.
func (n *Node) recover() error {
	st := n.wal.Recovered()
	if s := st.Snapshot; !s.IsEmpty() {
		ms, image, err := unwrapSnapshot(s.Data)
		if err != nil {
			return fmt.Errorf("node %d: snapshot %d/%d: %w", n.cfg.ID, s.Meta.Term, s.Meta.Index, err)
		}
		n.restoreMembers(ms, s.Meta.ConfState)
		if err := n.sm.Restore(image); err != nil {
			return fmt.Errorf("node %d: restoring snapshot %d/%d: %w", n.cfg.ID, s.Meta.Term, s.Meta.Index, err)
		}
		n.applied, n.snapIndex, n.appliedTerm = s.Meta.Index, s.Meta.Index, s.Meta.Term
		n.lastSnapBytes = int64(len(s.Data))
		n.metrics.applied.Store(n.applied)
	}
	join := n.cfg.Join || n.joinedBefore()
	var peers []uint64
	if !join {
		for id := range n.cfg.Peers {
			peers = append(peers, id)
		}
	}
	rc := raft.Config{
		ID: n.cfg.ID, Peers: peers, Join: join,
		ElectionTicks: n.cfg.ElectionTicks, HeartbeatTicks: n.cfg.HeartbeatTicks,
		Rand:    rand.New(rand.NewPCG(n.cfg.Seed, n.cfg.ID)),
		PreVote: true, CheckQuorum: true, LeaseReads: n.cfg.LeaseReads,
		AutoPromoteLearners: n.cfg.AutoPromoteLearners, PromoteLagEntries: n.cfg.PromoteLagEntries,
		Applied: n.applied,
		Logger:  n.cfg.Logger,
	}
	if !st.HardState.IsEmpty() || st.Snapshot != nil || len(st.Entries) > 0 {
		rc.Restore = &st
	}
	core, err := raft.New(rc)
	if err != nil {
		return fmt.Errorf("node %d: %w", n.cfg.ID, err)
	}
	n.core = core
	n.persisted = st.HardState
	n.term.Store(st.HardState.Term)
	n.role = raft.RoleFollower
	return nil
}

// handler adapts the transport's callbacks to the loop's channels. It never
// blocks the transport: a full inbox drops the message (Raft tolerates loss).
type handler struct{ n *Node }

func (h handler) Receive(m raft.Message) {
	select {
	case h.n.recvc <- m:
	default:
		h.n.metrics.recvDropped.Add(1)
	}
}

func (h handler) ReportUnreachable(id uint64) {
	select {
	case h.n.reportc <- report{id: id}:
	default:
	}
}

func (h handler) ReportSnapshot(id uint64, ok bool) {
	select {
	case h.n.reportc <- report{id: id, snapshot: true, ok: ok}:
	case <-h.n.exiting:
		// The loop is shutting down and may be waiting for the transport
		// to close; the report no longer matters.
	}
}

// Propose replicates data and returns the state machine's result for it
// once it is applied on this node. On a follower it returns a
// *NotLeaderError naming the leader.
func (n *Node) Propose(ctx context.Context, data []byte) ([]byte, error) {
	if len(data) == 0 {
		return nil, errors.New("node: empty command (empty entries are reserved for leader no-ops)")
	}
	if len(data) > n.cfg.MaxCommandBytes {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d (Config.MaxCommandBytes)", ErrCommandTooLarge, len(data), n.cfg.MaxCommandBytes)
	}
	return n.submit(ctx, &proposal{data: data, done: make(chan proposalResult, 1)})
}

// submit hands a proposal to the loop and waits for its outcome.
func (n *Node) submit(ctx context.Context, p *proposal) ([]byte, error) {
	p.start = time.Now()
	select {
	case n.propc <- p:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-n.done:
		return nil, n.stoppedErr()
	}
	select {
	case r := <-p.done:
		return r.val, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-n.done:
		// The loop answers every proposal it took before it closes done.
		select {
		case r := <-p.done:
			return r.val, r.err
		default:
			return nil, n.stoppedErr() // never reached the core
		}
	}
}

func (n *Node) stoppedErr() error {
	if n.err != nil {
		return fmt.Errorf("%w: %w", ErrStopped, n.err)
	}
	return ErrStopped
}

// Status returns the core's status (role, term, leader, commit, applied,
// per-follower progress on the leader).
//
// It asks the loop, which answers between two Readies. If the loop does not
// take the question within StatusTimeout (a stuck disk write, say), Status
// returns the copy the loop made at its last tick instead, so that the
// admin endpoint and monitoring keep answering about a wedged node.
func (n *Node) Status() raft.Status {
	c := make(chan raft.Status, 1)
	t := time.NewTimer(StatusTimeout)
	defer t.Stop()
	select {
	case n.statusc <- c:
		return <-c
	case <-n.done:
		return n.lastStatus
	case <-t.C:
		if st := n.tickStatus.Load(); st != nil {
			return *st
		}
		return raft.Status{ID: n.cfg.ID}
	}
}

// StatusTimeout bounds how long Status waits for the loop before it
// returns the status of the loop's last tick.
const StatusTimeout = time.Second

// Term returns the node's term as of its last write of its hard state,
// without a round trip to the loop (unlike Status): the term of the
// answers it gives. It may trail the core's term while a new term's
// Ready is being written.
func (n *Node) Term() uint64 { return n.term.Load() }

// SetSyncDelay makes every WAL fsync of this node wait d first (0 turns it
// off): a slow disk, for fault-injection tests (flotilla nemesis). Never
// use it in production.
func (n *Node) SetSyncDelay(d time.Duration) { n.syncDelay.Store(int64(d)) }

// SyncDelay returns the delay set by SetSyncDelay.
func (n *Node) SyncDelay() time.Duration { return time.Duration(n.syncDelay.Load()) }

// slowDisk waits the injected delay before an fsync.
func (n *Node) slowDisk() {
	if d := n.syncDelay.Load(); d > 0 {
		time.Sleep(time.Duration(d)) // an injected fault, not a wait for a condition
	}
}

// Addr returns the address the transport listens on.
func (n *Node) Addr() string { return n.tr.Addr() }

// Metrics returns the node's counters and histograms.
func (n *Node) Metrics() *Metrics { return n.metrics }

// Transport returns the node's transport, for its statistics.
func (n *Node) Transport() *transport.Transport { return n.tr }

// Done is closed when the node has stopped.
func (n *Node) Done() <-chan struct{} { return n.done }

// Err returns why the node stopped: nil after Stop, the fatal error
// otherwise. It returns nil while the node runs.
func (n *Node) Err() error {
	select {
	case <-n.done:
		return n.err
	default:
		return nil
	}
}

// crash stops the node as kill -9 would: no final flush of the core's
// pending work. Files are closed; what reached the OS stays, as it would.
func (n *Node) crash() {
	n.crashed.Store(true)
	n.Stop()
}

// Stop stops the loop, closes the transport and the WAL, and fails pending
// proposals with ErrStopped. It is safe to call more than once.
func (n *Node) Stop() error {
	n.stop.Do(func() { close(n.stopc) })
	<-n.done
	return n.err
}
