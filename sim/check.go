package sim

import (
	"github.com/flotilla-dev/flotilla/raft"
)

// checker holds the global record the invariants are checked against.
type checker struct {
	// leaders maps a term to the node that led it (Election Safety).
	leaders map[uint64]uint64
	// logs maps an entry (index, term) to the log hash chain at it: two logs
	// with the same entry must agree on everything before it (Log Matching).
	logs map[entryID]uint64
	// commits holds, per committed index, the log chain at that index and
	// the term of the leader that committed it first.
	commits map[uint64]commitRecord
	// commitMarks are the indexes at which the commit index first advanced,
	// in order, for the Leader Completeness check.
	commitMarks []uint64
	maxCommit   uint64
	// states maps an applied index to the state machine hash after it.
	states map[uint64]uint64
	// acked holds the index of every acknowledged command.
	acked    map[uint64]struct{}
	maxAcked uint64
	// reads holds the ReadIndex requests not yet answered.
	reads     map[uint64]readReq
	readsDone int
	elections int
}

type entryID struct{ index, term uint64 }

// readReq is a ReadIndex request: the node asked, and the highest index
// acknowledged to a client when it was asked.
type readReq struct {
	node     uint64
	minIndex uint64
}

type commitRecord struct {
	chain uint64
	term  uint64 // the committing leader's term
}

func newChecker() checker {
	return checker{
		leaders: map[uint64]uint64{},
		logs:    map[entryID]uint64{},
		commits: map[uint64]commitRecord{},
		states:  map[uint64]uint64{},
		acked:   map[uint64]struct{}{},
		reads:   map[uint64]readReq{},
	}
}

// becameLeader checks Election Safety when h wins its current term.
func (c *checker) becameLeader(w *world, h *host) {
	c.elections++
	if prev, ok := c.leaders[h.term]; ok && prev != h.id {
		w.fail("Election Safety", "n%d and n%d both lead term %d", prev, h.id, h.term)
	}
	c.leaders[h.term] = h.id
}

// logEntry checks Log Matching for an entry just made durable on h.
func (c *checker) logEntry(w *world, h *host, index, term, chain uint64) {
	id := entryID{index, term}
	if prev, ok := c.logs[id]; ok {
		if prev != chain {
			w.fail("Log Matching", "n%d holds entry %d/%d after a log that differs from another node's with the same entry", h.id, term, index)
		}
		return
	}
	c.logs[id] = chain
}

// committed records that h's commit index moved from old to now and checks
// that no two nodes ever commit different logs at one index.
func (c *checker) committed(w *world, h *host, old, now uint64) {
	committer := h.term
	for i := old + 1; i <= now; i++ {
		chain, ok := h.disk.chainAt(i)
		if !ok {
			continue // inside h's snapshot; checked when it was installed
		}
		if rec, seen := c.commits[i]; seen {
			if rec.chain != chain {
				w.fail("State Machine Safety", "n%d committed a log at index %d that differs from one committed before (term %d)", h.id, i, rec.term)
			}
			continue
		}
		c.commits[i] = commitRecord{chain: chain, term: committer}
	}
	if now > c.maxCommit {
		c.maxCommit = now
		if _, ok := c.commits[now]; ok {
			c.commitMarks = append(c.commitMarks, now)
		}
	}
}

// appliedState checks that h's state machine after index sm.applied equals
// every other node's after that index.
func (c *checker) appliedState(w *world, h *host, sm stateMachine) {
	if prev, ok := c.states[sm.applied]; ok {
		if prev != sm.hash {
			w.fail("State Machine Safety", "n%d applied a different command sequence up to index %d than another node", h.id, sm.applied)
		}
		return
	}
	c.states[sm.applied] = sm.hash
}

// readState checks a confirmed read (dissertation §6.4): it must cover
// every write acknowledged before it was asked, point at a committed
// index, and arrive at the node that asked.
func (c *checker) readState(w *world, h *host, rs raft.ReadState) {
	req, ok := c.reads[rs.ID]
	if !ok {
		return // an answer to a read a crashed incarnation asked
	}
	delete(c.reads, rs.ID)
	c.readsDone++
	switch {
	case req.node != h.id:
		w.fail("Read Linearizability", "read r%d asked on n%d was answered on n%d", rs.ID, req.node, h.id)
	case rs.Index < req.minIndex:
		w.fail("Read Linearizability", "n%d answered read r%d with index %d, but index %d was acknowledged before the read was asked",
			h.id, rs.ID, rs.Index, req.minIndex)
	case rs.Index > c.maxCommit:
		w.fail("Read Linearizability", "n%d answered read r%d with index %d, beyond every commit index (%d)", h.id, rs.ID, rs.Index, c.maxCommit)
	}
	w.trace.add(w.now(), "n%d read r%d at index %d", h.id, rs.ID, rs.Index)
}

func (c *checker) ack(index uint64) {
	c.acked[index] = struct{}{}
	c.maxAcked = max(c.maxAcked, index)
}

// afterStep checks Leader Completeness for every live leader: it must hold
// the newest entry committed by a leader of an earlier term (and so, by Log
// Matching, every entry before it).
func (c *checker) afterStep(w *world) {
	for _, h := range w.nodes {
		if !h.up || h.role != raft.RoleLeader {
			continue
		}
		for k := len(c.commitMarks) - 1; k >= 0; k-- {
			i := c.commitMarks[k]
			rec := c.commits[i]
			if rec.term >= h.term {
				continue
			}
			if i < h.disk.snapIndex() {
				break // inside its snapshot, which was checked on install
			}
			chain, ok := h.disk.chainAt(i)
			if !ok || chain != rec.chain {
				w.fail("Leader Completeness", "leader n%d of term %d lacks the entry at index %d committed in term %d",
					h.id, h.term, i, rec.term)
			}
			break
		}
	}
}
