package raft

import (
	"errors"
	"fmt"
	"slices"
)

// Rand is the source of randomness the core draws election timeouts from.
// *math/rand/v2.Rand satisfies it; seed it to make a run reproducible.
type Rand interface {
	Uint64() uint64
}

// Logger receives the core's log lines as a message and key/value pairs.
// *log/slog.Logger satisfies it.
type Logger interface {
	Debug(msg string, args ...any)
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
}

type discardLogger struct{}

func (discardLogger) Debug(string, ...any) {}
func (discardLogger) Info(string, ...any)  {}
func (discardLogger) Warn(string, ...any)  {}

// PersistedState is what a restarting node recovered from stable storage:
// everything earlier Readies asked the host to make durable.
type PersistedState struct {
	HardState HardState
	// Snapshot is the newest snapshot the host stored, or nil.
	Snapshot *Snapshot
	// Entries are the stored log entries after the snapshot, contiguous.
	Entries []Entry
}

// Config configures a Node. The zero value of every optional field picks the
// documented default.
type Config struct {
	// ID identifies this node; it must be non-zero and unique in the cluster.
	ID uint64
	// Peers lists every voter, including ID, for a node that starts a new
	// cluster. A restarted node takes its membership from its snapshot and
	// the configuration entries it applied after it, starting from Peers
	// when it has no snapshot.
	Peers []uint64
	// Join starts a node with no membership, to be added to a running
	// cluster (as a learner or voter, by a ProposeConfChange on its
	// leader): it learns the membership from the leader's log or snapshot.
	// Peers must be empty.
	Join bool
	// AutoPromoteLearners makes the leader propose a learner as a voter
	// once it has caught up: it answered recently and its log is within
	// PromoteLagEntries of the leader's (dissertation §4.2.1). One
	// promotion at a time; off by default.
	AutoPromoteLearners bool
	// PromoteLagEntries is the lag within which a learner counts as
	// caught up. Default 100.
	PromoteLagEntries uint64
	// ElectionTicks is the election timeout in ticks: a follower that hears
	// nothing from a leader for a random time in [ElectionTicks,
	// 2*ElectionTicks) ticks starts an election. Default 10. It should be
	// at least 5 times HeartbeatTicks, so that a few lost heartbeats do not
	// cause an election.
	ElectionTicks int
	// HeartbeatTicks is how often, in ticks, a leader sends heartbeats.
	// Default 1. Must be less than ElectionTicks.
	HeartbeatTicks int
	// Rand draws election timeouts. Required: inject a seeded source.
	Rand Rand
	// PreVote makes a node first ask whether it could win before it bumps
	// its term (dissertation §9.6), so a partitioned node that rejoins does
	// not disrupt a working leader: nodes refuse pre-votes while they hear
	// from a leader.
	PreVote bool
	// CheckQuorum makes a leader step down when it has not heard from a
	// quorum during one election-timeout period (so at most two election
	// timeouts after its last contact with a quorum), and makes followers
	// that hear from a leader ignore vote requests until an election
	// timeout passes (dissertation §6.2, §4.2.3).
	CheckQuorum bool
	// LeaseReads lets a leader answer ReadIndex at once, without a
	// heartbeat round, while its lease holds: a quorum answered a round it
	// started less than 90% of ElectionTicks ago, minus one tick. It
	// requires CheckQuorum, under which those voters refuse to vote for
	// another leader until a full election timeout after that round
	// reached them. The lease is safe only while no node's ticks run more
	// than about 10% faster than the leader's: a bounded clock-rate drift,
	// not synchronised clocks (docs/raft.md).
	LeaseReads bool
	// SnapshotTimeoutTicks is how long a leader waits for the outcome of a
	// MsgSnap before it treats the snapshot as lost and sends it again.
	// Hosts report outcomes with ReportSnapshot as soon as they know them;
	// this timeout only keeps a follower from stalling if a report never
	// comes. Default 10 * ElectionTicks.
	SnapshotTimeoutTicks int
	// MaxMsgBytes bounds the payload of entries in one MsgApp. A message
	// always carries at least one entry if any is due. Default 1 MiB.
	MaxMsgBytes uint64
	// MaxInflightMsgs bounds the MsgApps in flight to one follower in
	// replicate state. Default 256.
	MaxInflightMsgs int
	// MaxInflightBytes bounds the entry payload bytes in flight to one
	// follower. Default 0: no byte bound beyond MaxInflightMsgs*MaxMsgBytes.
	MaxInflightBytes uint64
	// MaxApplyBytes bounds the committed entries one Ready hands out.
	// Default 64 MiB.
	MaxApplyBytes uint64
	// Restore is the state of a restarting node; nil for a new node.
	Restore *PersistedState
	// Applied is the last index the host's state machine already holds
	// (for example from a snapshot it restored itself). Default: the
	// restored snapshot's index. Entries after it are handed out again.
	Applied uint64
	// Logger receives the core's log lines. Default: discard.
	Logger Logger

	// unsafe switches on deliberately broken rules; set only by tests that
	// prove the simulator catches them (see export_test.go).
	unsafe unsafeRules
}

// unsafeRules are bugs that can be switched on to check that the simulator's
// invariant checks fail when the protocol is wrong.
type unsafeRules struct {
	// commitPreviousTerm commits entries of earlier terms by counting
	// replicas, the mistake of Raft §5.4.2 (Figure 8).
	commitPreviousTerm bool
	// voteWithoutLogCheck grants votes without the up-to-date check of §5.4.1.
	voteWithoutLogCheck bool
	// asyncCountsSelf makes a leader count entries toward a quorum as soon
	// as AdvanceAsync reports them written, before they are durable.
	asyncCountsSelf bool
	// readWithoutQuorum answers reads without a heartbeat round.
	readWithoutQuorum bool
}

// ErrInvalidConfig is wrapped by every error Config.validate returns.
var ErrInvalidConfig = errors.New("raft: invalid config")

func (c *Config) withDefaults() (Config, error) {
	d := *c
	if d.ID == None {
		return d, fmt.Errorf("%w: ID must be non-zero", ErrInvalidConfig)
	}
	if d.Rand == nil {
		return d, fmt.Errorf("%w: Rand is required (inject a seeded source)", ErrInvalidConfig)
	}
	if d.ElectionTicks == 0 {
		d.ElectionTicks = 10
	}
	if d.HeartbeatTicks == 0 {
		d.HeartbeatTicks = 1
	}
	if d.HeartbeatTicks < 0 || d.ElectionTicks <= d.HeartbeatTicks {
		return d, fmt.Errorf("%w: ElectionTicks (%d) must exceed HeartbeatTicks (%d), both positive",
			ErrInvalidConfig, d.ElectionTicks, d.HeartbeatTicks)
	}
	if d.LeaseReads && (!d.CheckQuorum || d.ElectionTicks*9/10-1 < 1) {
		return d, fmt.Errorf("%w: LeaseReads needs CheckQuorum and ElectionTicks of at least 3 (got CheckQuorum=%v, ElectionTicks=%d)",
			ErrInvalidConfig, d.CheckQuorum, d.ElectionTicks)
	}
	if d.SnapshotTimeoutTicks <= 0 {
		d.SnapshotTimeoutTicks = 10 * d.ElectionTicks
	}
	if d.MaxMsgBytes == 0 {
		d.MaxMsgBytes = 1 << 20
	}
	if d.MaxInflightMsgs == 0 {
		d.MaxInflightMsgs = 256
	}
	if d.MaxInflightMsgs < 0 {
		return d, fmt.Errorf("%w: MaxInflightMsgs (%d) must be positive", ErrInvalidConfig, d.MaxInflightMsgs)
	}
	if d.MaxApplyBytes == 0 {
		d.MaxApplyBytes = 64 << 20
	}
	if d.Logger == nil {
		d.Logger = discardLogger{}
	}
	if d.PromoteLagEntries == 0 {
		d.PromoteLagEntries = 100
	}
	for _, v := range d.Peers {
		if v == None {
			return d, fmt.Errorf("%w: voter ID 0 is reserved", ErrInvalidConfig)
		}
	}
	switch {
	case d.Join && len(d.Peers) > 0:
		return d, fmt.Errorf("%w: a joining node takes its membership from the leader; leave Peers empty", ErrInvalidConfig)
	case d.Join || d.Restore != nil:
		// The membership comes from the leader, or from the restored
		// snapshot and log (where this node may be a learner, or removed).
	case len(d.Peers) == 0:
		return d, fmt.Errorf("%w: no voters (set Peers, or Join to join an existing cluster)", ErrInvalidConfig)
	case !slices.Contains(d.Peers, d.ID):
		return d, fmt.Errorf("%w: node %d is not among the voters %v (set Join to join as a new member)", ErrInvalidConfig, d.ID, d.Peers)
	}
	return d, nil
}
