package raft_test

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/flotilla-dev/flotilla/raft"
)

// The output format of the scripted scenarios (interaction_test.go).

func idName(id uint64) string {
	if id == raft.None {
		return "none"
	}
	return strconv.FormatUint(id, 10)
}

func roleLine(m *member) string {
	st := m.node.Status()
	return fmt.Sprintf("%d: %s term=%d lead=%s", m.id, st.Role, st.Term, idName(st.Lead))
}

// fmtEntries prints entries as term/index[:data], separated by spaces.
func fmtEntries(ents ...raft.Entry) string {
	parts := make([]string, len(ents))
	for i, e := range ents {
		parts[i] = fmt.Sprintf("%d/%d", e.Term, e.Index)
		if e.Type == raft.EntryConfChange {
			cc, cs, err := raft.DecodeConfChange(e.Data)
			if err != nil {
				parts[i] += ":conf?" + err.Error()
			} else {
				parts[i] += fmt.Sprintf(":conf[%v -> %v]", cc, cs)
			}
			continue
		}
		if len(e.Data) > 0 {
			parts[i] += ":" + string(e.Data)
		}
	}
	return strings.Join(parts, " ")
}

func fmtMsg(m raft.Message) string {
	s := fmt.Sprintf("%d->%d %s term=%d", m.From, m.To, m.Type, m.Term)
	switch m.Type {
	case raft.MsgVote, raft.MsgPreVote:
		s += fmt.Sprintf(" last=%d/%d", m.LogTerm, m.Index)
		if m.Context != 0 {
			s += " (transfer)"
		}
	case raft.MsgApp:
		s += fmt.Sprintf(" prev=%d/%d commit=%d", m.LogTerm, m.Index, m.Commit)
		if len(m.Entries) > 0 {
			s += " entries=[" + fmtEntries(m.Entries...) + "]"
		}
	case raft.MsgAppResp:
		s += fmt.Sprintf(" index=%d", m.Index)
		if m.Reject {
			s += fmt.Sprintf(" rejected hint=%d/%d", m.LogTerm, m.RejectHint)
		}
	case raft.MsgHeartbeat:
		s += fmt.Sprintf(" commit=%d round=%d", m.Commit, m.Context)
	case raft.MsgHeartbeatResp:
		s += fmt.Sprintf(" round=%d", m.Context)
	case raft.MsgReadIndex:
		s += fmt.Sprintf(" read=%d", m.Context)
	case raft.MsgReadIndexResp:
		s += fmt.Sprintf(" read=%d index=%d", m.Context, m.Index)
	case raft.MsgSnap:
		s += fmt.Sprintf(" snapshot=%d/%d voters=%v", m.Snapshot.Meta.Term, m.Snapshot.Meta.Index, m.Snapshot.Meta.ConfState.Voters)
	}
	if m.Reject && m.Type != raft.MsgAppResp {
		s += " rejected"
	}
	return s
}

func writeReady(w *strings.Builder, rd raft.Ready, lost []bool) {
	if ss := rd.SoftState; ss != nil {
		fmt.Fprintf(w, "  State: %s lead=%s\n", ss.Role, idName(ss.Lead))
	}
	if hs := rd.HardState; !hs.IsEmpty() {
		fmt.Fprintf(w, "  HardState term=%d vote=%s commit=%d\n", hs.Term, idName(hs.Vote), hs.Commit)
	}
	if s := rd.Snapshot; s != nil {
		fmt.Fprintf(w, "  Snapshot %d/%d voters=%v data=%q\n", s.Meta.Term, s.Meta.Index, s.Meta.ConfState.Voters, s.Data)
	}
	if len(rd.Entries) > 0 {
		fmt.Fprintf(w, "  Entries: %s\n", fmtEntries(rd.Entries...))
	}
	if len(rd.CommittedEntries) > 0 {
		fmt.Fprintf(w, "  CommittedEntries: %s\n", fmtEntries(rd.CommittedEntries...))
	}
	for _, r := range rd.ReadStates {
		fmt.Fprintf(w, "  ReadState read=%d index=%d\n", r.ID, r.Index)
	}
	if len(rd.Messages) > 0 {
		fmt.Fprintln(w, "  Messages:")
		for i, m := range rd.Messages {
			note := ""
			if lost[i] {
				note = "  (lost: partition)"
			}
			fmt.Fprintf(w, "    %s%s\n", fmtMsg(m), note)
		}
	}
}

func writeStatus(w *strings.Builder, st raft.Status) {
	fmt.Fprintf(w, "%d: %s term=%d vote=%s lead=%s commit=%d applied=%d snapshot=%d last=%d\n",
		st.ID, st.Role, st.Term, idName(st.Vote), idName(st.Lead), st.Commit, st.Applied, st.SnapshotIndex, st.LastIndex)
	if cs := st.Config; cs.IsJoint() || len(cs.Learners) > 0 {
		fmt.Fprintf(w, "  config %v\n", cs)
	}
	for _, p := range st.Progress {
		fmt.Fprintf(w, "  progress %d: %s match=%d next=%d inflight=%d active=%t\n", p.ID, p.State, p.Match, p.Next, p.Inflight, p.RecentActive)
	}
}

func writeStore(w *strings.Builder, m *member) {
	hs := m.store.hs
	fmt.Fprintf(w, "%d: durable term=%d vote=%s commit=%d\n", m.id, hs.Term, idName(hs.Vote), hs.Commit)
	if s := m.store.snap; s != nil {
		fmt.Fprintf(w, "  snapshot %d/%d data=%q\n", s.Meta.Term, s.Meta.Index, s.Data)
	}
	fmt.Fprintf(w, "  entries: %s\n", fmtEntries(m.store.ents...))
}
