package explore

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"

	"github.com/flotilla-dev/flotilla/raft"
)

// checker holds the history the safety invariants are checked against. It
// is part of the state hash: two paths that reach the same nodes and
// network with different histories are different states.
type checker struct {
	// leaders maps a term to the node that became leader in it, counting
	// every node that ever did (Election Safety).
	leaders map[uint64]uint64
	// commits holds, per committed index, the log chain at it, the term of
	// its entry and the term of the node that first committed it.
	commits map[uint64]commitRecord
	// states maps an applied index to the state machine hash after it.
	states    map[uint64]uint64
	violation *Violation
}

type commitRecord struct {
	chain, entryTerm, term uint64
}

func newChecker() checker {
	return checker{leaders: map[uint64]uint64{}, commits: map[uint64]commitRecord{}, states: map[uint64]uint64{}}
}

func (c *checker) fail(property, format string, args ...any) {
	if c.violation == nil {
		c.violation = &Violation{Property: property, Detail: fmt.Sprintf(format, args...)}
	}
}

// afterStep checks the invariants that are properties of the current state:
// terms never decrease, Election Safety, Leader Completeness and Log Matching.
func (c *checker) afterStep(w *world) {
	for _, h := range w.nodes {
		if !h.up() {
			continue
		}
		st := h.st
		if st.Term < h.maxTerm {
			c.fail("terms never decrease", "n%d term %d -> %d", h.id, h.maxTerm, st.Term)
		}
		h.maxTerm = max(h.maxTerm, st.Term)
		if st.Role != raft.RoleLeader {
			continue
		}
		if prev, ok := c.leaders[st.Term]; ok && prev != h.id {
			c.fail("Election Safety", "n%d and n%d both lead term %d", prev, h.id, st.Term)
		}
		c.leaders[st.Term] = h.id
		c.leaderComplete(h, st)
	}
	c.logMatching(w)
}

// leaderComplete checks Leader Completeness (Raft §5.4): a leader of term T
// holds every entry committed by a node of a term before T.
func (c *checker) leaderComplete(h *host, st raft.Status) {
	for _, i := range slices.Sorted(maps.Keys(c.commits)) {
		rec := c.commits[i]
		if rec.term >= st.Term {
			continue
		}
		if t, err := h.core.Term(i); err != nil || t != rec.entryTerm {
			c.fail("Leader Completeness", "leader n%d of term %d lacks the entry %d/%d committed in term %d",
				h.id, st.Term, rec.entryTerm, i, rec.term)
			return
		}
	}
}

// logMatching checks Log Matching (Raft §5.3) over the durable logs: two
// logs with an entry of the same index and term hold the same entries up to
// it, compared through their hash chains.
func (c *checker) logMatching(w *world) {
	for a := range w.nodes {
		for b := a + 1; b < len(w.nodes); b++ {
			da, db := &w.nodes[a].disk, &w.nodes[b].disk
			for i := range min(len(da.ents), len(db.ents)) {
				if da.ents[i].Term == db.ents[i].Term && da.chain[i+1] != db.chain[i+1] {
					c.fail("Log Matching", "n%d and n%d hold entry %d/%d after different logs",
						w.nodes[a].id, w.nodes[b].id, da.ents[i].Term, da.ents[i].Index)
					return
				}
			}
		}
	}
}

// committed records that h persisted a commit index moved from old to now
// and checks that no two nodes commit different logs at one index.
func (c *checker) committed(h *host, old, now uint64) {
	for i := old + 1; i <= now; i++ {
		chain, ok := h.disk.chainAt(i)
		if !ok {
			continue
		}
		if rec, seen := c.commits[i]; seen {
			if rec.chain != chain {
				c.fail("State Machine Safety", "n%d committed a log at index %d that differs from one committed before (in term %d)", h.id, i, rec.term)
			}
			continue
		}
		c.commits[i] = commitRecord{chain: chain, entryTerm: h.disk.ents[i-1].Term, term: h.disk.hs.Term}
	}
}

// applied checks State Machine Safety: every node's state machine after
// applying index i equals every other node's after index i.
func (c *checker) applied(h *host) {
	if prev, ok := c.states[h.smApplied]; ok {
		if prev != h.smHash {
			c.fail("State Machine Safety", "n%d applied a different command sequence up to index %d than another node", h.id, h.smApplied)
		}
		return
	}
	c.states[h.smApplied] = h.smHash
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
