package explore

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Options bounds an exploration. Start from DefaultOptions: the zero value
// of the booleans switches actions off.
type Options struct {
	// Nodes is the cluster size, 1 to 5.
	Nodes int
	// Depth is the number of actions in the longest explored sequence.
	Depth int
	// MaxStates stops the search once this many distinct states are
	// found (0: no bound). The result is then marked Truncated. Both
	// limits are checked after every batch of 2048 expanded states, so a
	// search may overshoot them by one batch.
	MaxStates int
	// MaxDuration stops the search after this much wall time (0: none).
	MaxDuration time.Duration
	// MaxInFlight bounds the network: campaigns and heartbeats are not
	// taken while this many messages are in flight (a state constraint,
	// as in TLC).
	MaxInFlight int
	// MaxTerm bounds elections: a node campaigns only below this term.
	MaxTerm int
	// MaxCrashes bounds the crashes along one sequence.
	MaxCrashes int
	// MaxProposals bounds the client commands along one sequence.
	MaxProposals int
	// Drops, Duplicates and Heartbeats enable dropping and duplicating
	// in-flight messages and ticking leaders.
	Drops, Duplicates, Heartbeats bool
	// AutoReady handles a node's Readies right after each action that
	// steps it, as a driver's loop does, instead of as actions of their
	// own. Sequences get about half as long, so the search goes deeper,
	// but a node never takes several inputs into one Ready.
	AutoReady bool
	// PreVote runs the cores with Config.PreVote. Followers are never
	// ticked, so one that heard from a leader never grants a pre-vote:
	// pre-vote runs explore fewer behaviours (docs/raft.md).
	PreVote bool
	// BrokenHost violates the Ready contract on purpose: the host never
	// persists the vote of a HardState (it keeps the old one in the same
	// term, none in a new term), so a node that crashes after voting may
	// vote again in the same term. It exists to show that the explorer
	// catches a broken system.
	BrokenHost bool
	// BrokenEntries violates the Ready contract differently: the host
	// sends a Ready's messages (append acknowledgements included) but
	// never syncs entries, so a crash loses every entry the incarnation
	// wrote (and a commit index beyond what is left). A second negative
	// control, for the log invariants.
	BrokenEntries bool
	// Workers is the number of goroutines that replay states (default
	// GOMAXPROCS). The result does not depend on it.
	Workers int

	// noPrune expands every state, seen or not, and onState sees the hash
	// of every state generated: tests use them to check that pruning loses
	// no state reachable within a depth.
	noPrune bool
	onState func(StateHash)
}

// DefaultOptions returns the bounds used by `flotilla explore raft`.
func DefaultOptions() Options {
	return Options{
		Nodes: 3, Depth: 10, MaxStates: 2_000_000, MaxInFlight: 4, MaxTerm: 3, MaxCrashes: 1, MaxProposals: 1,
		Drops: true, Duplicates: true, Heartbeats: true,
	}
}

// ErrInvalidOptions is wrapped by the errors of Explore for bad Options.
var ErrInvalidOptions = errors.New("explore: invalid options")

func (o *Options) validate() error {
	switch {
	case o.Nodes < 1 || o.Nodes > 5:
		return fmt.Errorf("%w: Nodes must be 1 to 5, got %d", ErrInvalidOptions, o.Nodes)
	case o.Depth < 0:
		return fmt.Errorf("%w: Depth must not be negative, got %d", ErrInvalidOptions, o.Depth)
	case o.MaxInFlight < 1:
		return fmt.Errorf("%w: MaxInFlight must be at least 1, got %d", ErrInvalidOptions, o.MaxInFlight)
	case o.MaxStates < 0 || o.MaxTerm < 0 || o.MaxCrashes < 0 || o.MaxProposals < 0:
		return fmt.Errorf("%w: bounds must not be negative", ErrInvalidOptions)
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	return nil
}

// Violation is a broken invariant and the shortest action sequence found
// that breaks it.
type Violation struct {
	Property string
	Detail   string
	// Actions lead from the initial state to the violation; Trace renders
	// them one per line (with the messages delivered, dropped or
	// duplicated).
	Actions []Action
	Trace   []string
}

// Report renders v with its trace, one action per line.
func (v *Violation) Report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "violation: %s: %s\ntrace (%d actions):\n", v.Property, v.Detail, len(v.Trace))
	for i, s := range v.Trace {
		fmt.Fprintf(&b, "%3d  %s\n", i+1, s)
	}
	return b.String()
}

// Level counts the states of one BFS depth.
type Level struct {
	Depth int
	// Explored states were generated at this depth; New of them were not
	// seen before.
	Explored, New int
}

// Result summarises an exploration.
type Result struct {
	// Explored counts every state generated (each replayed sequence),
	// Distinct those left after pruning by state hash (the initial state
	// included).
	Explored, Distinct int
	// Depth is the deepest level reached.
	Depth  int
	Levels []Level
	// Complete means no new state was left at some depth: the whole state
	// space within the bounds was explored.
	Complete bool
	// Truncated means MaxStates or MaxDuration stopped the search early.
	Truncated bool
	Elapsed   time.Duration
	Violation *Violation
}

// StatesPerSecond is Explored divided by the wall time.
func (r Result) StatesPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Explored) / r.Elapsed.Seconds()
}

// treeNode is a state in the BFS tree: the action that reached it from its
// parent. Walking parents to the root gives the sequence to replay.
type treeNode struct {
	parent int32
	act    Action
}

// child is a successor a worker computed.
type child struct {
	act       Action
	hash      StateHash
	violation *Violation
}

// Explore searches every action sequence up to o.Depth breadth first,
// replaying each from the initial state, checks the invariants after every
// action and prunes states whose hash was seen before. It stops at the
// first violation, which then has a shortest trace.
func Explore(o Options) (Result, error) {
	if err := o.validate(); err != nil {
		return Result{}, err
	}
	start := time.Now()
	var r Result
	tree := []treeNode{{parent: -1}}
	root := replay(&o, nil, false)
	rootHash := root.hash(nil)
	seen := map[StateHash]struct{}{rootHash: {}}
	if o.onState != nil {
		o.onState(rootHash)
	}
	r.Distinct = 1
	frontier := []int32{0}
	const batch = 2048
	for depth := 1; depth <= o.Depth && len(frontier) > 0; depth++ {
		lvl := Level{Depth: depth}
		var next []int32
		for b := 0; b < len(frontier); b += batch {
			part := frontier[b:min(b+batch, len(frontier))]
			kids := expand(&o, tree, part)
			for k, cs := range kids {
				for _, c := range cs {
					lvl.Explored++
					if c.violation != nil {
						r.Violation = c.violation
						r.finish(lvl, depth, start)
						return r, nil
					}
					if o.onState != nil {
						o.onState(c.hash)
					}
					if _, dup := seen[c.hash]; dup && !o.noPrune {
						continue
					}
					seen[c.hash] = struct{}{}
					lvl.New++
					tree = append(tree, treeNode{parent: part[k], act: c.act})
					next = append(next, int32(len(tree)-1))
				}
			}
			if o.MaxStates > 0 && r.Distinct+lvl.New >= o.MaxStates ||
				o.MaxDuration > 0 && time.Since(start) >= o.MaxDuration {
				r.Truncated = true
				r.finish(lvl, depth, start)
				return r, nil
			}
		}
		r.finish(lvl, depth, start)
		frontier = next
	}
	r.Complete = len(frontier) == 0
	r.Elapsed = time.Since(start)
	return r, nil
}

// finish adds a level's counts to r.
func (r *Result) finish(l Level, depth int, start time.Time) {
	r.Levels = append(r.Levels, l)
	r.Explored += l.Explored
	r.Distinct += l.New
	r.Depth = depth
	r.Elapsed = time.Since(start)
}

// path returns the actions from the root to tree node i.
func path(tree []treeNode, i int32) []Action {
	var acts []Action
	for ; i > 0; i = tree[i].parent {
		acts = append(acts, tree[i].act)
	}
	for a, b := 0, len(acts)-1; a < b; a, b = a+1, b-1 {
		acts[a], acts[b] = acts[b], acts[a]
	}
	return acts
}

// expand computes the successors of each state in part, on o.Workers
// goroutines; kids[k] are part[k]'s, in action order.
func expand(o *Options, tree []treeNode, part []int32) [][]child {
	kids := make([][]child, len(part))
	var wg sync.WaitGroup
	var mu sync.Mutex
	nextJob := 0
	for range o.Workers {
		wg.Go(func() {
			for {
				mu.Lock()
				k := nextJob
				nextJob++
				mu.Unlock()
				if k >= len(part) {
					return
				}
				kids[k] = successors(o, path(tree, part[k]))
			}
		})
	}
	wg.Wait()
	return kids
}

// successors replays prefix and every one-action extension of it.
func successors(o *Options, prefix []Action) []child {
	parent := replay(o, prefix, false)
	acts := parent.enabled()
	segs := parent.segments()
	out := make([]child, len(acts))
	seq := append(prefix[:len(prefix):len(prefix)], Action{})
	for i, a := range acts {
		seq[len(seq)-1] = a
		w := parent.clone()
		w.step(a)
		out[i].act = a
		if v := w.chk.violation; v != nil {
			tw := replay(o, seq, true)
			v.Actions = append([]Action(nil), seq...)
			v.Trace = tw.trace
			out[i].violation = v
			continue
		}
		out[i].hash = w.hash(segs)
	}
	return out
}

// Hash replays acts from the initial state and returns the hash of the
// state reached, and the violation on the way if there is one.
func Hash(o Options, acts []Action) (StateHash, *Violation, error) {
	if err := o.validate(); err != nil {
		return StateHash{}, nil, err
	}
	w := replay(&o, acts, false)
	return w.hash(nil), w.chk.violation, nil
}

// Enabled replays acts and lists the actions possible in the state reached.
func Enabled(o Options, acts []Action) ([]Action, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	return replay(&o, acts, false).enabled(), nil
}
