package sim

import (
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/flotilla-dev/flotilla/raft"
)

// Options configure one simulated run.
type Options struct {
	// Seed determines everything else.
	Seed int64
	// Nodes is the cluster size, 1 to 9; 0 picks 3 to 7 from the seed.
	Nodes int
	// Steps is the number of events in the faulty phase. Default 4000.
	Steps int
	// Trace, if set, receives every event of the run, one line each.
	Trace io.Writer
	// TraceTail is how many of the last events a Violation carries.
	// Default 40.
	TraceTail int
	// ConfigHook, if set, may change each node's raft.Config before the
	// node starts. Tests use it to switch on deliberately broken rules.
	ConfigHook func(*raft.Config)
	// VisualizationDir, if set, receives porcupine's HTML visualization
	// of a history that is not linearizable.
	VisualizationDir string

	// breakReadWait makes hosts serve ReadIndex reads without waiting to
	// apply the read index: a broken host only the linearizability check
	// can catch (tests only).
	breakReadWait bool
}

// DefaultSteps is the number of faulty-phase events when Options.Steps is 0.
const DefaultSteps = 4000

func (o Options) withDefaults() Options {
	if o.Steps <= 0 {
		o.Steps = DefaultSteps
	}
	if o.TraceTail <= 0 {
		o.TraceTail = 40
	}
	return o
}

// Result summarises one run.
type Result struct {
	Seed  int64
	Nodes int
	// Steps is the number of events processed, both phases.
	Steps int
	// Elections counts the times a node became leader.
	Elections int
	// Commits is the highest commit index any node reached.
	Commits uint64
	// Proposals and Acked count client commands proposed and acknowledged
	// (committed and applied on the leader that accepted them).
	Proposals, Acked int
	// Reads and ReadsServed count ReadIndex requests made and confirmed.
	Reads, ReadsServed int
	// KVOps counts the KV client operations that completed (their
	// history is checked for linearizability with porcupine);
	// LinearizabilityUnknown is set when the check timed out.
	KVOps                  int
	LinearizabilityUnknown bool
	// Visualization is the path of the HTML visualization written for a
	// history that is not linearizable.
	Visualization string
	// Messages sent, dropped (by loss, partitions or dead receivers) and
	// duplicated by the network.
	MsgsSent, MsgsDropped, MsgsDuplicated int
	// Crashes and Partitions count the faults injected; Transfers the
	// leadership transfers asked for.
	Crashes, Partitions, Transfers int
	// ConfChanges counts the membership changes proposed.
	ConfChanges int
	// VirtualTime is the simulated time the run covered.
	VirtualTime time.Duration
	// Params describes the protocol and fault parameters the seed chose.
	Params string
	// Violation is set when a property failed; the run stops there.
	Violation *Violation
}

// Violation is a failed property check, with what is needed to replay it.
type Violation struct {
	Seed     int64
	Property string
	Detail   string
	// Step is the index of the event after which the check failed.
	Step int
	// Time is the virtual time of that event.
	Time time.Duration
	// Tail holds the last events before the failure, oldest first.
	Tail []string
	// Replay is the command that replays the run with a full trace.
	Replay string
}

func (v *Violation) Error() string {
	return fmt.Sprintf("sim: seed %d: %s violated at step %d (t=%v): %s", v.Seed, v.Property, v.Step, v.Time, v.Detail)
}

// Report renders the violation for a person: the property, the detail, the
// last events and the replay command.
func (v *Violation) Report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "VIOLATION seed=%d property=%q step=%d t=%v\n  %s\n", v.Seed, v.Property, v.Step, v.Time, v.Detail)
	fmt.Fprintf(&b, "last %d events:\n", len(v.Tail))
	for _, l := range v.Tail {
		b.WriteString("  ")
		b.WriteString(l)
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "replay: %s\n", v.Replay)
	return b.String()
}

// params are the per-seed choices of protocol options and fault rates.
type params struct {
	nodes         int
	preVote       bool
	checkQuorum   bool
	leaseReads    bool // leaders answer reads from their lease (needs checkQuorum)
	spares        int  // nodes started with no membership, for reconfigurations
	electionTicks int
	maxMsgBytes   uint64
	maxInflight   int
	snapEvery     uint64  // compact after this many applied entries
	asyncLeader   bool    // leaders sync their own entries after replicating
	dropRate      float64 // per message
	dupRate       float64
	latency       int64 // base one-way latency, µs
	tickEvery     int64 // µs between a node's ticks
	proposeEvery  int64 // mean µs between client proposals
	nemesisEvery  int64 // mean µs between fault injections
}

func chooseParams(rng *rand.Rand, nodes int) params {
	if nodes == 0 {
		nodes = 3 + rng.IntN(5)
	}
	checkQuorum := rng.IntN(2) == 0
	return params{
		nodes:         nodes,
		preVote:       rng.IntN(2) == 0,
		checkQuorum:   checkQuorum,
		leaseReads:    checkQuorum && rng.IntN(2) == 0,
		spares:        2 * rng.IntN(2),
		electionTicks: 10,
		maxMsgBytes:   []uint64{1, 64, 512, 1 << 20}[rng.IntN(4)],
		maxInflight:   []int{1, 4, 256}[rng.IntN(3)],
		snapEvery:     uint64(5 + rng.IntN(60)),
		asyncLeader:   rng.IntN(2) == 0,
		dropRate:      []float64{0, 0.02, 0.1, 0.2}[rng.IntN(4)],
		dupRate:       []float64{0, 0.02, 0.1}[rng.IntN(3)],
		latency:       int64(500 + rng.IntN(4000)),
		tickEvery:     10_000,
		proposeEvery:  int64(2_000 + rng.IntN(20_000)),
		nemesisEvery:  []int64{10_000, 30_000, 100_000, 200_000}[rng.IntN(4)],
	}
}

func (p params) String() string {
	return fmt.Sprintf("nodes=%d+%d prevote=%v checkquorum=%v lease=%v asyncleader=%v maxmsg=%d inflight=%d snapevery=%d drop=%.2f dup=%.2f latency=%dus",
		p.nodes, p.spares, p.preVote, p.checkQuorum, p.leaseReads, p.asyncLeader, p.maxMsgBytes, p.maxInflight, p.snapEvery, p.dropRate, p.dupRate, p.latency)
}

// Run simulates one seed and returns its result. A property violation (or a
// panic in a core, which is a broken invariant) ends the run and is reported
// in Result.Violation.
func Run(opts Options) (res Result) {
	opts = opts.withDefaults()
	w := newWorld(opts)
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stopRun); !ok {
				w.record("no panic (a core invariant broke)", fmt.Sprint(r))
			}
		}
		res = w.result()
	}()
	w.run()
	return
}
