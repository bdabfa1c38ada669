package raft

import "fmt"

// Ready is a batch of work for the host. Handle it in this order, then call
// Advance:
//
//  1. Persist. If Snapshot is set, store it and discard every stored entry.
//     Then store Entries: an entry at an index already stored replaces it and
//     everything after it. Then store HardState if it is not empty. If
//     MustSync is set, sync before going on. (Raft Figure 2: currentTerm,
//     votedFor and log[] must be on stable storage before answering RPCs.)
//  2. Send Messages. Only now: a vote or an append acknowledgement in them
//     promises that the state of step 1 is durable.
//  3. Apply. Install Snapshot into the state machine if set, then apply
//     CommittedEntries in order. Entries with empty Data are no-ops.
//  4. Call Advance(rd) with this Ready.
//
// A Ready's slices are shared with the Node and must not be modified.
type Ready struct {
	// SoftState is set when the leader or this node's role changed.
	SoftState *SoftState
	// HardState is set (non-empty) when term, vote or commit changed.
	HardState HardState
	// Snapshot is a snapshot received from the leader, to store and install.
	Snapshot *Snapshot
	// Entries are to be appended to stable storage before Messages are sent.
	Entries []Entry
	// CommittedEntries are committed and to be applied, in index order.
	CommittedEntries []Entry
	// Messages are to be sent to peers once step 1 is done. Sending may fail
	// or reorder; Raft tolerates that. For a MsgSnap, the host reports the
	// outcome with ReportSnapshot once the transfer finished or failed;
	// without a report the leader waits SnapshotTimeoutTicks, then retries.
	Messages []Message
	// MustSync says step 1 must end with a sync (fsync). It is false when
	// only the commit index changed: losing that in a crash is harmless.
	MustSync bool
	// ReadStates are reads confirmed since the last Ready (see ReadIndex):
	// serve each once the state machine has applied its Index. They need
	// not wait for step 1.
	ReadStates []ReadState
}

// HasReady reports whether Ready would return any work.
func (n *Node) HasReady() bool {
	if n.outstanding {
		return false
	}
	return n.appendPending || n.commitPending ||
		n.softState() != n.prevSoft ||
		n.hardState() != n.prevHard ||
		n.log.pendingSnapshot != nil ||
		len(n.log.toWrite()) > 0 ||
		len(n.msgs) > 0 || len(n.readStates) > 0 || n.readRoundDue ||
		n.log.hasNextCommitted()
}

// Ready returns the work that is due. The host must call Advance with it
// before it calls Ready again; it may call Tick, Step and Propose in between.
func (n *Node) Ready() Ready {
	if n.outstanding {
		panic("raft: Ready called again before Advance")
	}
	n.flushBroadcasts()
	var rd Ready
	if ss := n.softState(); ss != n.prevSoft {
		changed := ss
		rd.SoftState = &changed
		n.prevSoft = ss
	}
	hs := n.hardState()
	if hs != n.prevHard {
		rd.HardState = hs
		rd.MustSync = hs.Term != n.prevHard.Term || hs.Vote != n.prevHard.Vote
		n.prevHard = hs
	}
	if s := n.log.pendingSnapshot; s != nil {
		rd.Snapshot = s
		rd.MustSync = true
		n.log.pendingSnapshot = nil
		n.log.applying = s.Meta.Index
	}
	if u := n.log.toWrite(); len(u) > 0 {
		rd.Entries = u[:len(u):len(u)]
		rd.MustSync = true
		n.log.inProgress = u[len(u)-1].Index
	}
	if ents := n.log.nextCommitted(n.cfg.MaxApplyBytes); len(ents) > 0 {
		rd.CommittedEntries = ents
		n.log.applying = ents[len(ents)-1].Index
	}
	rd.Messages, n.msgs = n.msgs, nil
	rd.ReadStates, n.readStates = n.readStates, nil
	n.outstanding = true
	return rd
}

// Advance tells the node that the host has done everything rd asked for.
func (n *Node) Advance(rd Ready) {
	n.advance(rd)
	// Entries replaced since the Ready was handed out were persisted but
	// are gone; the ones before them, still in the log, are now durable.
	for k := len(rd.Entries) - 1; k >= 0; k-- {
		if e := rd.Entries[k]; n.log.matchTerm(e.Index, e.Term) {
			n.StableTo(e.Index, e.Term)
			break
		}
	}
}

// AdvanceAsync is Advance for a host that has written rd.Entries but not
// yet made them durable: the messages are sent, the committed entries
// applied, the hard state durable if its term or vote changed, but the
// entries' sync is still running. The host reports it with StableTo later.
//
// This lets a leader write its own log in parallel with replication
// (dissertation §10.2.1), and even after its followers: until StableTo, the
// leader does not count itself toward a quorum for those entries, so they
// commit only once a quorum of followers holds them. Only a leader may use
// it; a Ready with a Snapshot must be Advanced synchronously. The host's log
// must be sequential: a sync makes every earlier write durable.
func (n *Node) AdvanceAsync(rd Ready) {
	if rd.Snapshot != nil || n.role != RoleLeader {
		panic("raft: AdvanceAsync is for a leader's Ready without a snapshot")
	}
	n.advance(rd)
	if k := len(rd.Entries); k > 0 && n.cfg.unsafe.asyncCountsSelf {
		n.StableTo(rd.Entries[k-1].Index, rd.Entries[k-1].Term)
	}
}

func (n *Node) advance(rd Ready) {
	if !n.outstanding {
		panic("raft: Advance without an outstanding Ready")
	}
	n.outstanding = false
	if s := rd.Snapshot; s != nil {
		n.log.applied = max(n.log.applied, s.Meta.Index)
	}
	for _, e := range rd.CommittedEntries {
		if e.Index <= n.log.applied {
			continue
		}
		n.log.applied = e.Index
		if e.Type == EntryConfChange && e.Index > n.confIndex {
			n.applyConfEntry(e)
		}
	}
}

// StableTo reports that the host's log is durable up to the entry at index
// with term, and with it everything before it. It is a no-op if the log no
// longer holds that entry. Hosts that call Advance need not call it.
func (n *Node) StableTo(index, term uint64) {
	n.log.stableTo(index, term)
	if n.role == RoleLeader {
		// The leader counts itself toward a quorum only for entries it has
		// made durable.
		if n.prs[n.id].maybeUpdate(n.log.stable) && n.maybeCommit() {
			n.commitPending = true
		}
	}
}

// Compact tells the node that the host's state machine image data holds
// every entry up to index, which must be applied already. The log before
// index is dropped; followers that need it get the snapshot instead. It
// returns the snapshot with its metadata filled in: the host stores it
// durably, then may delete its stored entries up to index.
func (n *Node) Compact(index uint64, data []byte) (Snapshot, error) {
	t, err := n.log.term(index)
	if err != nil {
		return Snapshot{}, fmt.Errorf("raft: compact to %d: %w", index, err)
	}
	if n.confIndex > index {
		return Snapshot{}, fmt.Errorf("raft: compact to %d: the configuration in force was applied at %d, after it; compact at the applied index", index, n.confIndex)
	}
	s := &Snapshot{
		Meta: SnapshotMeta{Index: index, Term: t, ConfState: n.confState()},
		Data: data,
	}
	if err := n.log.compact(s); err != nil {
		return Snapshot{}, err
	}
	return *s, nil
}

// ProgressStatus is the leader's view of one member.
type ProgressStatus struct {
	ID           uint64
	Match, Next  uint64
	State        ProgressState
	RecentActive bool
	// Inflight is the number of MsgApps sent and not yet acknowledged.
	Inflight int
}

// Status is a snapshot of a node's state for dashboards and tests.
type Status struct {
	ID     uint64
	Role   Role
	Term   uint64
	Vote   uint64
	Lead   uint64
	Commit uint64
	// Applied is the last index the host acknowledged as applied.
	Applied uint64
	// FirstIndex and LastIndex bound the entries held in memory; the ones
	// before FirstIndex are in the snapshot at SnapshotIndex.
	FirstIndex, LastIndex, SnapshotIndex uint64
	Voters                               []uint64
	// Config is the configuration in force: voters (both halves when
	// joint) and learners.
	Config ConfState
	// Progress lists every member in ID order; only a leader fills it.
	Progress []ProgressStatus
}

// Status returns the node's current state.
func (n *Node) Status() Status {
	s := Status{
		ID: n.id, Role: n.role, Term: n.term, Vote: n.vote, Lead: n.lead,
		Commit: n.log.committed, Applied: n.log.applied,
		FirstIndex: n.log.firstIndex(), LastIndex: n.log.lastIndex(), SnapshotIndex: n.log.snap.Index,
		Voters: n.voters.IDs(), Config: n.confState(),
	}
	if n.role == RoleLeader {
		for _, id := range n.ids {
			pr := n.prs[id]
			s.Progress = append(s.Progress, ProgressStatus{
				ID: id, Match: pr.Match, Next: pr.Next, State: pr.State,
				RecentActive: pr.RecentActive, Inflight: pr.Inflights.count,
			})
		}
	}
	return s
}

// Term returns the term of the entry at index i, or ErrCompacted if it is
// before the snapshot point, or an error if it is beyond the log.
func (n *Node) Term(i uint64) (uint64, error) { return n.log.term(i) }
