package node

import (
	"errors"
	"fmt"
	"time"

	"github.com/flotilla-dev/flotilla/raft"
)

// run is the node's loop: the only goroutine that touches the core, the WAL
// and the state machine.
func (n *Node) run() {
	ticker := time.NewTicker(n.cfg.TickInterval)
	stopc := n.stopc
	var handOver <-chan time.Time // set while a stopping leader hands over
	defer func() {
		close(n.exiting)
		ticker.Stop()
		n.lastStatus = n.core.Status()
		n.tr.Close()
		<-n.syncerDone
		if err := n.wal.Close(); err != nil && n.err == nil {
			n.err = err
		}
		stopped := fmt.Errorf("%w: %w", ErrStopped, ErrOutcomeUnknown)
		for idx, p := range n.waiters {
			p.done <- proposalResult{err: stopped}
			delete(n.waiters, idx)
		}
		n.stopReads(n.stoppedErr())
		if t := n.transfer; t != nil {
			t.done <- n.stoppedErr()
		}
		for {
			select {
			case p := <-n.propc:
				p.done <- proposalResult{err: ErrStopped}
				continue
			default:
			}
			break
		}
		close(n.done)
	}()
	for {
		if handOver != nil && n.role != raft.RoleLeader {
			n.leaveGracefully() // handed over
			return
		}
		select {
		case <-stopc:
			if n.crashed.Load() {
				return
			}
			if d := n.handOver(); d > 0 {
				stopc, handOver = nil, time.After(d)
				break
			}
			n.leaveGracefully()
			return
		case <-handOver:
			n.log.Warn("stopping: leadership hand-over timed out", "id", n.cfg.ID)
			n.leaveGracefully()
			return
		case r := <-n.transferc:
			n.startTransfer(r)
		case <-ticker.C:
			n.core.Tick()
			n.ticks++
			st := n.core.Status()
			n.tickStatus.Store(&st)
			n.loseReads(true)
			n.dropRemovedPeers()
			n.requestSync()
		case m := <-n.recvc:
			n.step(m)
		case p := <-n.propc:
			n.propose(p)
		case r := <-n.readc:
			n.read(r)
		case r := <-n.reportc:
			n.handleReport(r)
		case c := <-n.statusc:
			c <- n.core.Status()
		case r := <-n.syncDonec:
			if err := n.synced(r); err != nil {
				n.err = err
				return
			}
		}
		n.drain()
		if err := n.handleReady(); err != nil {
			n.err = err
			n.log.Error("node stopping on a fatal error", "id", n.cfg.ID, "err", err)
			return
		}
		n.checkTransfer()
		if n.removed {
			n.log.Info("removed from the cluster; stopping", "id", n.cfg.ID)
			n.leaveGracefully() // sends what the core still owes (a hand-over)
			if n.err == nil {
				n.err = ErrRemoved
			}
			return
		}
	}
}

// drain takes whatever else is already queued, so that many proposals and
// messages share one Ready: one WAL write, one fsync (group commit).
func (n *Node) drain() {
	for i := 0; i < n.cfg.MaxBatch; i++ {
		select {
		case m := <-n.recvc:
			n.step(m)
		case p := <-n.propc:
			n.propose(p)
		case r := <-n.readc:
			n.read(r)
		case r := <-n.reportc:
			n.handleReport(r)
		default:
			return
		}
	}
}

func (n *Node) step(m raft.Message) {
	if m.Type == raft.MsgAppResp {
		// A follower holds what we sent: our own sync no longer races
		// ahead of the followers' (syncer.go).
		n.requestSync()
	}
	if err := n.core.Step(m); err != nil {
		n.metrics.badMessages.Add(1)
		n.log.Warn("dropping a malformed peer message", "id", n.cfg.ID, "from", m.From, "err", err)
	}
}

func (n *Node) propose(p *proposal) {
	var idx, term uint64
	var err error
	if p.conf != nil {
		idx, term, err = n.core.ProposeConfChange(*p.conf)
	} else {
		idx, term, err = n.core.Propose(p.data)
	}
	if err != nil {
		var nl *raft.NotLeaderError
		switch {
		case errors.As(err, &nl):
			err = &NotLeaderError{Leader: nl.Leader, LeaderAddr: n.peerAddr(nl.Leader)}
		case errors.Is(err, raft.ErrTransferring):
			// Handing over: send the client to the node taking over.
			to := n.core.Transferee()
			err = &NotLeaderError{Leader: to, LeaderAddr: n.peerAddr(to)}
		}
		p.done <- proposalResult{err: err}
		return
	}
	p.index, p.term = idx, term
	if old, ok := n.waiters[idx]; ok {
		// The slot held an earlier proposal of an older term, overwritten
		// here; another node may still hold it and commit it.
		old.done <- proposalResult{err: ErrOutcomeUnknown}
	}
	n.waiters[idx] = p
	n.metrics.proposals.Add(1)
}

func (n *Node) handleReport(r report) {
	if r.snapshot {
		n.core.ReportSnapshot(r.id, r.ok)
		return
	}
	n.core.ReportUnreachable(r.id)
}

// handleReady runs every pending Ready through the contract of raft.Ready.
func (n *Node) handleReady() error {
	for n.core.HasReady() {
		rd := n.core.Ready()
		// Reads confirmed before a leader change in this Ready still hold.
		n.confirmReads(rd.ReadStates)
		if ss := rd.SoftState; ss != nil {
			if ss.Lead != n.lead {
				n.metrics.leaderChanges.Add(1)
			}
			if ss.Role == raft.RoleLeader && n.role != raft.RoleLeader {
				n.metrics.elections.Add(1)
			}
			n.role, n.lead = ss.Role, ss.Lead
			n.loseReads(false) // the core dropped them
		}
		early, late := n.splitMessages(rd)
		n.reachRemoved(early)
		n.tr.Send(early)
		async := n.asyncWrite(rd)
		if err := n.persist(rd, async); err != nil {
			return err
		}
		n.reachRemoved(late)
		n.tr.Send(late)
		if err := n.apply(rd); err != nil {
			return err
		}
		n.answerReads()
		if async {
			n.core.AdvanceAsync(rd)
			n.wroteAsync(rd.Entries[len(rd.Entries)-1])
		} else {
			n.core.Advance(rd)
		}
		if err := n.maybeSnapshot(); err != nil {
			return err
		}
	}
	return nil
}

// splitMessages picks the messages that may leave before the log write: a
// leader's appends and heartbeats, whose entries the leader only counts for
// itself after Advance (dissertation §10.2.1). Everything else, votes and
// acknowledgements above all, waits for the write.
func (n *Node) splitMessages(rd raft.Ready) (early, late []raft.Message) {
	hs := rd.HardState
	termOrVoteChanged := !hs.IsEmpty() && (hs.Term != n.persisted.Term || hs.Vote != n.persisted.Vote)
	if n.role != raft.RoleLeader || termOrVoteChanged {
		return nil, rd.Messages
	}
	for _, m := range rd.Messages {
		switch m.Type {
		case raft.MsgApp, raft.MsgHeartbeat, raft.MsgSnap:
			early = append(early, m)
		default:
			late = append(late, m)
		}
	}
	return early, late
}

func (n *Node) persist(rd raft.Ready, async bool) error {
	if s := rd.Snapshot; s != nil {
		if err := n.wal.InstallSnapshot(*s); err != nil {
			return fmt.Errorf("node %d: storing snapshot %d/%d: %w", n.cfg.ID, s.Meta.Term, s.Meta.Index, err)
		}
	}
	hs := rd.HardState
	if hs.IsEmpty() {
		hs = n.unsaved
	}
	if len(rd.Entries) == 0 && !rd.MustSync {
		// Only the commit index moved. Losing it in a crash is harmless
		// (raft.Ready.MustSync), so it rides along with the next write
		// instead of costing a write of its own on the commit path.
		n.unsaved = hs
		return nil
	}
	return n.save(hs, rd.Entries, rd.MustSync && !async)
}

func (n *Node) save(hs raft.HardState, ents []raft.Entry, sync bool) error {
	if hs.IsEmpty() && len(ents) == 0 {
		return nil
	}
	start := time.Now()
	if sync {
		n.slowDisk()
	}
	if err := n.wal.Save(hs, ents, sync); err != nil {
		return fmt.Errorf("node %d: writing the WAL: %w", n.cfg.ID, err)
	}
	if k := len(ents); k > 0 {
		n.written = syncPoint{ents[k-1].Index, ents[k-1].Term}
	}
	n.metrics.walWrite.observe(time.Since(start))
	if !hs.IsEmpty() {
		n.persisted = hs
		n.term.Store(hs.Term)
	}
	n.unsaved = raft.HardState{}
	return nil
}

// apply installs a received snapshot, applies committed commands in one
// batch and answers the proposals waiting for them.
func (n *Node) apply(rd raft.Ready) error {
	if s := rd.Snapshot; s != nil {
		ms, image, err := unwrapSnapshot(s.Data)
		if err != nil {
			return fmt.Errorf("node %d: installing snapshot %d/%d: %w", n.cfg.ID, s.Meta.Term, s.Meta.Index, err)
		}
		if err := n.sm.Restore(image); err != nil {
			return fmt.Errorf("node %d: installing snapshot %d/%d: %w", n.cfg.ID, s.Meta.Term, s.Meta.Index, err)
		}
		n.restoreMembers(ms, s.Meta.ConfState)
		n.applied, n.snapIndex, n.sinceSnap = s.Meta.Index, s.Meta.Index, 0
		n.lastSnapBytes = int64(len(s.Data))
		n.metrics.applied.Store(n.applied)
		for idx, p := range n.waiters {
			if idx <= s.Meta.Index {
				// Its fate is inside the snapshot.
				p.done <- proposalResult{err: ErrOutcomeUnknown}
				delete(n.waiters, idx)
			}
		}
		n.failSuperseded(s.Meta.Index, s.Meta.Term)
	}
	if len(rd.CommittedEntries) == 0 {
		return nil
	}
	cmds := make([]Command, 0, len(rd.CommittedEntries))
	for _, e := range rd.CommittedEntries {
		if e.Type == raft.EntryConfChange && e.Index > n.applied {
			if n.applyMembership(e) {
				n.removed = true
			}
		}
		if e.Type == raft.EntryNormal && len(e.Data) > 0 {
			cmds = append(cmds, Command{Index: e.Index, Term: e.Term, Data: e.Data})
			n.sinceSnap += int64(len(e.Data))
		}
	}
	var results [][]byte
	if len(cmds) > 0 {
		start := time.Now()
		results = n.sm.Apply(cmds)
		n.metrics.apply.observe(time.Since(start))
		if len(results) != len(cmds) {
			return fmt.Errorf("node %d: state machine returned %d results for %d commands", n.cfg.ID, len(results), len(cmds))
		}
	}
	k := 0
	for _, e := range rd.CommittedEntries {
		var res []byte
		if k < len(cmds) && cmds[k].Index == e.Index {
			res = results[k]
			k++
		}
		p, ok := n.waiters[e.Index]
		if !ok {
			continue
		}
		delete(n.waiters, e.Index)
		if p.term != e.Term {
			p.done <- proposalResult{err: ErrProposalLost}
			continue
		}
		n.metrics.proposalLatency.observe(time.Since(p.start))
		p.done <- proposalResult{val: res}
	}
	last := rd.CommittedEntries[len(rd.CommittedEntries)-1]
	n.applied = last.Index
	n.metrics.applied.Store(n.applied)
	n.failSuperseded(last.Index, last.Term)
	return nil
}

// failSuperseded fails the proposals that can no longer commit once an entry
// of term at index is committed: terms in the committed log never decrease,
// so a proposal of an older term at a later index was overwritten.
func (n *Node) failSuperseded(index, term uint64) {
	if term <= n.appliedTerm {
		return
	}
	n.appliedTerm = term
	for idx, p := range n.waiters {
		if idx > index && p.term < term {
			p.done <- proposalResult{err: ErrProposalLost}
			delete(n.waiters, idx)
		}
	}
}

// maybeSnapshot compacts the log once enough was applied since the last
// snapshot: SnapshotEntries entries whose commands add up to at least the
// last snapshot's size, or SnapshotBytes of commands. The size condition
// keeps the snapshot writes to about the bytes of the log they replace: a
// 27 MB store snapshotted every 10,000 puts of 256 bytes wrote ten times
// more snapshot than log, on the loop.
func (n *Node) maybeSnapshot() error {
	byEntries := n.cfg.SnapshotEntries > 0 && n.applied >= n.snapIndex+uint64(n.cfg.SnapshotEntries) &&
		n.sinceSnap >= n.lastSnapBytes
	byBytes := n.cfg.SnapshotBytes > 0 && n.sinceSnap >= n.cfg.SnapshotBytes
	if !(byEntries || byBytes) || n.applied <= n.snapIndex {
		return nil
	}
	if err := n.syncNow(); err != nil {
		return err
	}
	start := time.Now()
	image, err := n.sm.Snapshot()
	if err != nil {
		return fmt.Errorf("node %d: taking a snapshot at %d: %w", n.cfg.ID, n.applied, err)
	}
	data := n.wrapSnapshot(image)
	took := time.Since(start)
	snap, err := n.core.Compact(n.applied, data)
	if err != nil {
		return fmt.Errorf("node %d: compacting to %d: %w", n.cfg.ID, n.applied, err)
	}
	if err := n.wal.SaveSnapshot(snap); err != nil {
		return fmt.Errorf("node %d: saving snapshot %d: %w", n.cfg.ID, n.applied, err)
	}
	n.snapIndex, n.sinceSnap, n.lastSnapBytes = n.applied, 0, int64(len(data))
	n.metrics.snapshots.Add(1)
	n.log.Info("snapshot taken", "id", n.cfg.ID, "index", snap.Meta.Index, "bytes", len(data),
		"encode", took.Round(time.Millisecond), "total", time.Since(start).Round(time.Millisecond))
	return nil
}

// leaveGracefully flushes what the loop owes before it stops: anything the
// core still wants written is written, so a clean stop loses nothing.
func (n *Node) leaveGracefully() {
	err := n.handleReady()
	if err == nil {
		err = n.save(n.unsaved, nil, true)
	}
	if err == nil {
		err = n.syncNow()
	}
	if err != nil && n.err == nil {
		n.err = err
	}
}
