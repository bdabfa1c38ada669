package node

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config configures a Node.
type Config struct {
	// ID is this node's ID, non-zero; ClusterID names the cluster. Both are
	// recorded in the data directory, which refuses to open for another pair.
	ID, ClusterID uint64
	// Peers maps every voter's ID, including this node's, to its peer
	// address. A restarted node takes its membership from its snapshot when
	// it has one.
	Peers map[uint64]string
	// Join starts a node that joins a running cluster: Peers lists the
	// members to reach (this node's own address may be left out if Listen
	// is set), and the node learns the membership from the leader once a
	// ChangeMembership on it adds this node. Remembered in the data
	// directory: a node that joined restarts as such.
	Join bool
	// Listen is the peer address to listen on; default Peers[ID].
	Listen string
	// DataDir holds the write-ahead log and snapshots.
	DataDir string
	// TickInterval is the length of one Raft tick. Default 100ms.
	TickInterval time.Duration
	// ElectionTicks and HeartbeatTicks are the Raft timeouts in ticks;
	// defaults 10 and 1 (an election timeout of 1-2 s, heartbeats every
	// 100 ms with the default tick).
	ElectionTicks, HeartbeatTicks int
	// SnapshotEntries makes the node snapshot its state machine and compact
	// its log every this many applied entries, once the commands applied
	// since the last snapshot also add up to that snapshot's size (so
	// that a large state is not rewritten for a few bytes of log). Default
	// 10000; negative disables automatic snapshots.
	SnapshotEntries int
	// SnapshotBytes also snapshots once this many bytes of commands were
	// applied since the last snapshot, whatever the snapshot's size.
	// Default 64 MiB; negative disables.
	SnapshotBytes int64
	// MaxBatch bounds the proposals folded into one Ready. Default 4096.
	MaxBatch int
	// MaxCommandBytes bounds one proposed command. Default and maximum
	// 2 MiB (MaxCommandBytes), so that any entry fits a transport frame and a WAL record.
	MaxCommandBytes int
	// LeaseReads lets the leader confirm ReadIndex calls from its lease,
	// without a heartbeat round (raft.Config.LeaseReads: safe while clock
	// rates differ by less than about 10%).
	LeaseReads bool
	// AutoPromoteLearners makes the leader promote a learner to voter once
	// it has caught up to within PromoteLagEntries of the leader's log
	// (default 100); raft.Config.AutoPromoteLearners.
	AutoPromoteLearners bool
	PromoteLagEntries   uint64
	// NoTransferOnStop makes Stop on a leader stop at once. By default the
	// leader first hands its role to the most up-to-date voter (waiting at
	// most an election timeout), so that a planned restart causes no
	// election timeout.
	NoTransferOnStop bool
	// NoSync skips fsync. Unsafe: acknowledged writes can be lost on a
	// machine crash. For tests and benchmarks of the CPU path only.
	NoSync bool
	// Seed seeds the election timeout randomness; default: from the ID and
	// the start time.
	Seed uint64
	// Logger receives the node's logs. Default: slog.Default().
	Logger *slog.Logger
}

// MaxCommandBytes is the largest command a Node accepts: well under the
// transport's frame limit and the WAL's record limit, so that an accepted
// command can always be stored and replicated.
const MaxCommandBytes = 2 << 20

// ErrInvalidConfig is wrapped by every configuration error.
var ErrInvalidConfig = errors.New("node: invalid config")

func (c Config) withDefaults() (Config, error) {
	if c.ID == 0 {
		return c, fmt.Errorf("%w: ID must be non-zero", ErrInvalidConfig)
	}
	if c.ClusterID == 0 {
		return c, fmt.Errorf("%w: ClusterID must be non-zero", ErrInvalidConfig)
	}
	if _, ok := c.Peers[c.ID]; !ok && !(c.Join && c.Listen != "") {
		return c, fmt.Errorf("%w: Peers has no address for this node (%d)", ErrInvalidConfig, c.ID)
	}
	if c.DataDir == "" {
		return c, fmt.Errorf("%w: DataDir is required", ErrInvalidConfig)
	}
	if c.Listen == "" {
		c.Listen = c.Peers[c.ID]
	}
	if c.TickInterval == 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = 10
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = 1
	}
	if c.SnapshotEntries == 0 {
		c.SnapshotEntries = 10000
	}
	if c.SnapshotBytes == 0 {
		c.SnapshotBytes = 64 << 20
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 4096
	}
	if c.MaxCommandBytes <= 0 || c.MaxCommandBytes > MaxCommandBytes {
		c.MaxCommandBytes = MaxCommandBytes
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano()) ^ c.ID<<48
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}
