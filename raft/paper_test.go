package raft_test

// Paper-rule tests: each one checks a rule of the Raft paper (Ongaro and
// Ousterhout, "In Search of an Understandable Consensus Algorithm") or of
// Ongaro's dissertation, named by its section, on single nodes that are fed
// hand-written messages through the public API.
//

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/flotilla-dev/flotilla/raft"
)

var (
	preVote     = func(c *raft.Config) { c.PreVote = true }
	checkQuorum = func(c *raft.Config) { c.CheckQuorum = true }
	// notVoter makes the node one with no membership of its own yet.
	notVoter = func(c *raft.Config) { c.Peers, c.Join = nil, true }
)

// newNode starts node id of the cluster (1 2 3). With a non-empty hs or log
// it is a restart from that durable state; log holds the terms of entries
// 1, 2, ...
func newNode(t *testing.T, id uint64, hs raft.HardState, log []uint64, opts ...func(*raft.Config)) *raft.Node {
	t.Helper()
	cfg := raft.Config{ID: id, Peers: []uint64{1, 2, 3}, ElectionTicks: 10, HeartbeatTicks: 1, Rand: rand.New(rand.NewPCG(id, 0))}
	if !hs.IsEmpty() || len(log) > 0 {
		cfg.Restore = &raft.PersistedState{HardState: hs, Entries: ents(1, log...)}
	}
	for _, o := range opts {
		o(&cfg)
	}
	n, err := raft.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// ents returns no-op entries of the given terms at indexes first, first+1, ...
func ents(first uint64, terms ...uint64) []raft.Entry {
	var es []raft.Entry
	for i, term := range terms {
		es = append(es, raft.Entry{Term: term, Index: first + uint64(i), Type: raft.EntryNormal})
	}
	return es
}

// handle takes the node's Ready, if any, and advances past it. The tests
// only look at it: a node's own log is all the storage they need.
func handle(n *raft.Node) raft.Ready {
	if !n.HasReady() {
		return raft.Ready{}
	}
	rd := n.Ready()
	n.Advance(rd)
	return rd
}

// step delivers m and returns the Ready it causes.
func step(t *testing.T, n *raft.Node, m raft.Message) raft.Ready {
	t.Helper()
	if err := n.Step(m); err != nil {
		t.Fatalf("Step(%v): %v", m, err)
	}
	return handle(n)
}

// logTerms returns the terms of the entries in the node's log.
func logTerms(t *testing.T, n *raft.Node) []uint64 {
	t.Helper()
	st := n.Status()
	var terms []uint64
	for i := st.FirstIndex; i <= st.LastIndex; i++ {
		term, err := n.Term(i)
		if err != nil {
			t.Fatalf("Term(%d): %v", i, err)
		}
		terms = append(terms, term)
	}
	return terms
}

func diffMsgs(t *testing.T, want, got []raft.Message) {
	t.Helper()
	if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("messages (-want +got):\n%s", d)
	}
}

// makeLeader makes a fresh node 1 leader of term 1 with node 2's vote.
func makeLeader(t *testing.T) *raft.Node {
	t.Helper()
	n := newNode(t, 1, raft.HardState{}, nil)
	n.Campaign()
	handle(n)
	step(t, n, raft.Message{Type: raft.MsgVoteResp, From: 2, To: 1, Term: 1})
	if st := n.Status(); st.Role != raft.RoleLeader {
		t.Fatalf("node 1 is %s after winning the election, want leader", st.Role)
	}
	return n
}

// Raft §5.1: "If a server receives a request with a stale term number, it
// rejects the request." A stale request changes nothing; with check-quorum
// or pre-vote, or if the receiver is no voter, it answers a stale leader
// with its newer term.
func TestPaperStaleTermRequestIsRejected(t *testing.T) {
	app := raft.Message{Type: raft.MsgApp, From: 1, To: 2, Term: 2, LogTerm: 2, Index: 3, Entries: ents(4, 2), Commit: 3}
	newer := []raft.Message{{Type: raft.MsgAppResp, From: 2, To: 1, Term: 3}}
	for _, tc := range []struct {
		name string
		opts []func(*raft.Config)
		msg  raft.Message
		want []raft.Message
	}{
		{"MsgApp is ignored", nil, app, nil},
		{"MsgApp is answered with the newer term (check-quorum)", []func(*raft.Config){checkQuorum}, app, newer},
		{"MsgApp is answered with the newer term (pre-vote)", []func(*raft.Config){preVote}, app, newer},
		{"MsgHeartbeat is ignored", nil, raft.Message{Type: raft.MsgHeartbeat, From: 1, To: 2, Term: 2, Commit: 3}, nil},
		// A node that is no voter never campaigns, so it cannot raise the
		// stale leader's term that way: it answers even without the options.
		{"MsgHeartbeat is answered with the newer term (not a voter)", []func(*raft.Config){notVoter},
			raft.Message{Type: raft.MsgHeartbeat, From: 1, To: 2, Term: 2, Commit: 3}, newer},
		{"MsgVote gets no vote", nil, raft.Message{Type: raft.MsgVote, From: 3, To: 2, Term: 2, LogTerm: 9, Index: 9}, nil},
		{
			"MsgPreVote is refused with the newer term", []func(*raft.Config){preVote},
			raft.Message{Type: raft.MsgPreVote, From: 3, To: 2, Term: 2, LogTerm: 9, Index: 9},
			// The refusal also tells the candidate what is committed.
			[]raft.Message{{Type: raft.MsgPreVoteResp, From: 2, To: 3, Term: 3, Reject: true, Commit: 1, LogTerm: 1}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, 2, raft.HardState{Term: 3, Commit: 1}, []uint64{1, 2, 2}, tc.opts...)
			handle(n)
			rd := step(t, n, tc.msg)
			diffMsgs(t, tc.want, rd.Messages)
			st := n.Status()
			if st.Term != 3 || st.Vote != raft.None || st.Lead != raft.None || st.Commit != 1 {
				t.Errorf("after a stale %s: term=%d vote=%d lead=%d commit=%d, want term=3 and no vote, leader or new commit",
					tc.msg.Type, st.Term, st.Vote, st.Lead, st.Commit)
			}
			if got := logTerms(t, n); !cmp.Equal(got, []uint64{1, 2, 2}) {
				t.Errorf("log terms %v after a stale %s, want it unchanged", got, tc.msg.Type)
			}
		})
	}
}

// Raft §5.1: "If a candidate or leader discovers that its term is out of
// date, it immediately reverts to follower state."
func TestPaperHigherTermRevertsToFollower(t *testing.T) {
	for _, tc := range []struct {
		name     string
		leader   bool
		msg      raft.Message
		wantLead uint64
	}{
		{"leader, MsgHeartbeat", true, raft.Message{Type: raft.MsgHeartbeat, From: 2, To: 1, Term: 5}, 2},
		{"leader, MsgAppResp", true, raft.Message{Type: raft.MsgAppResp, From: 2, To: 1, Term: 5, Index: 1}, raft.None},
		{"leader, MsgVote", true, raft.Message{Type: raft.MsgVote, From: 3, To: 1, Term: 5, LogTerm: 1, Index: 1}, raft.None},
		{"candidate, MsgVoteResp", false, raft.Message{Type: raft.MsgVoteResp, From: 3, To: 1, Term: 5, Reject: true}, raft.None},
		{"candidate, MsgApp", false, raft.Message{Type: raft.MsgApp, From: 3, To: 1, Term: 5}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n *raft.Node
			if tc.leader {
				n = makeLeader(t)
			} else {
				n = newNode(t, 1, raft.HardState{}, nil)
				n.Campaign()
			}
			handle(n)
			step(t, n, tc.msg)
			if st := n.Status(); st.Role != raft.RoleFollower || st.Term != 5 || st.Lead != tc.wantLead {
				t.Errorf("after %s of term 5: %s term=%d lead=%d, want follower term=5 lead=%d", tc.msg.Type, st.Role, st.Term, st.Lead, tc.wantLead)
			}
		})
	}
}

// Raft §5.2: "each server will vote for at most one candidate in a given
// term, on a first-come-first-served basis", and Figure 2: votedFor is
// persistent state, on stable storage before the node responds.
func TestPaperVoteAtMostOncePerTerm(t *testing.T) {
	vote := func(from uint64) raft.Message { return raft.Message{Type: raft.MsgVote, From: from, To: 1, Term: 1} }
	grant := func(to uint64) []raft.Message {
		return []raft.Message{{Type: raft.MsgVoteResp, From: 1, To: to, Term: 1}}
	}
	refuse := func(to uint64) []raft.Message {
		return []raft.Message{{Type: raft.MsgVoteResp, From: 1, To: to, Term: 1, Reject: true}}
	}

	n := newNode(t, 1, raft.HardState{}, nil)
	rd := step(t, n, vote(2))
	diffMsgs(t, grant(2), rd.Messages)
	if want := (raft.HardState{Term: 1, Vote: 2}); rd.HardState != want || !rd.MustSync {
		t.Errorf("the Ready with the grant has HardState %+v MustSync=%t, want %+v MustSync=true: the vote must be durable before the grant is sent",
			rd.HardState, rd.MustSync, want)
	}
	diffMsgs(t, refuse(3), step(t, n, vote(3)).Messages)
	diffMsgs(t, grant(2), step(t, n, vote(2)).Messages) // a retransmitted request

	restarted := newNode(t, 1, raft.HardState{Term: 1, Vote: 2}, nil)
	diffMsgs(t, refuse(3), step(t, restarted, vote(3)).Messages)
}

// Raft §5.2: a candidate that receives AppendEntries from a leader whose term
// is at least its own "recognizes the leader as legitimate and returns to
// follower state".
func TestPaperCandidateYieldsToLeaderOfItsTerm(t *testing.T) {
	n := newNode(t, 1, raft.HardState{}, nil)
	n.Campaign()
	handle(n)
	step(t, n, raft.Message{Type: raft.MsgApp, From: 2, To: 1, Term: 1})
	if st := n.Status(); st.Role != raft.RoleFollower || st.Term != 1 || st.Lead != 2 {
		t.Errorf("candidate after MsgApp of its term: %s term=%d lead=%d, want follower term=1 lead=2", st.Role, st.Term, st.Lead)
	}
}

// Raft §5.2: election timeouts are "chosen randomly from a fixed interval",
// here [ElectionTicks, 2*ElectionTicks), so that split votes are rare.
func TestPaperElectionTimeoutIsRandomized(t *testing.T) {
	seen := map[int]bool{}
	for seed := range uint64(50) {
		n := newNode(t, 1, raft.HardState{}, nil, func(c *raft.Config) { c.Rand = rand.New(rand.NewPCG(seed, 7)) })
		ticks := 0
		for !n.HasReady() && ticks < 100 {
			n.Tick()
			ticks++
		}
		if ticks < 10 || ticks >= 20 {
			t.Fatalf("seed %d: a follower campaigned after %d ticks, want a timeout in [10, 20)", seed, ticks)
		}
		seen[ticks] = true
	}
	if len(seen) < 5 {
		t.Errorf("50 seeds gave only %d distinct timeouts %v: the timeout is not randomized", len(seen), seen)
	}
}

// Raft §5.3: AppendEntries is rejected unless the follower's log holds an
// entry at prevLogIndex whose term is prevLogTerm; an existing entry that
// conflicts with a new one is deleted with all that follow it, and entries
// already present are left alone (Figure 2, receiver rules 2 and 3).
func TestPaperAppendEntriesConsistencyCheck(t *testing.T) {
	resp := func(term, index uint64) raft.Message {
		return raft.Message{Type: raft.MsgAppResp, From: 2, To: 1, Term: term, Index: index}
	}
	reject := func(index, hintIndex, hintTerm uint64) raft.Message {
		return raft.Message{Type: raft.MsgAppResp, From: 2, To: 1, Term: 2, Index: index, Reject: true, RejectHint: hintIndex, LogTerm: hintTerm}
	}
	for _, tc := range []struct {
		name    string
		msg     raft.Message
		want    raft.Message
		wantLog []uint64
	}{
		{
			"matching prev entry: the entries are appended",
			raft.Message{Term: 2, LogTerm: 2, Index: 3, Entries: ents(4, 2)},
			resp(2, 4), []uint64{1, 2, 2, 2},
		},
		{
			"prev entry of another term: rejected, with a hint",
			raft.Message{Term: 2, LogTerm: 1, Index: 3, Entries: ents(4, 2)},
			reject(3, 1, 1), []uint64{1, 2, 2},
		},
		{
			"prev entry missing: rejected, hint at the last entry",
			raft.Message{Term: 2, LogTerm: 2, Index: 5, Entries: ents(6, 2)},
			reject(5, 3, 2), []uint64{1, 2, 2},
		},
		{
			"conflicting entry: it and all after it are replaced",
			raft.Message{Term: 3, LogTerm: 1, Index: 1, Entries: ents(2, 3)},
			resp(3, 2), []uint64{1, 3},
		},
		{
			"entries already present: nothing is truncated",
			raft.Message{Term: 2, LogTerm: 1, Index: 1, Entries: ents(2, 2)},
			resp(2, 2), []uint64{1, 2, 2},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, 2, raft.HardState{Term: 2, Commit: 1}, []uint64{1, 2, 2})
			handle(n)
			m := tc.msg
			m.Type, m.From, m.To, m.Commit = raft.MsgApp, 1, 2, 1
			diffMsgs(t, []raft.Message{tc.want}, step(t, n, m).Messages)
			if got := logTerms(t, n); !cmp.Equal(got, tc.wantLog) {
				t.Errorf("log terms %v, want %v", got, tc.wantLog)
			}
		})
	}
}

// Raft §5.4.1: a voter denies its vote if its own log is more up-to-date than
// the candidate's: the later last term wins, and with equal last terms the
// longer log. Pre-vote (dissertation §9.6) applies the same check.
func TestPaperVoteRequiresUpToDateLog(t *testing.T) {
	// The voter's log ends at term 2, index 2.
	for _, tc := range []struct {
		name              string
		lastTerm, lastIdx uint64
		grant             bool
	}{
		{"same last term, same length", 2, 2, true},
		{"same last term, longer", 2, 3, true},
		{"same last term, shorter", 2, 1, false},
		{"older last term, longer", 1, 5, false},
		{"newer last term, shorter", 3, 1, true},
		{"empty log", 0, 0, false},
	} {
		for _, pre := range []bool{false, true} {
			typ, respTyp, opts := raft.MsgVote, raft.MsgVoteResp, []func(*raft.Config){}
			if pre {
				typ, respTyp, opts = raft.MsgPreVote, raft.MsgPreVoteResp, []func(*raft.Config){preVote}
			}
			t.Run(typ.String()+"/"+tc.name, func(t *testing.T) {
				n := newNode(t, 1, raft.HardState{Term: 2, Commit: 1}, []uint64{1, 2}, opts...)
				handle(n)
				rd := step(t, n, raft.Message{Type: typ, From: 2, To: 1, Term: 3, LogTerm: tc.lastTerm, Index: tc.lastIdx})
				// A grant names the term asked for; a pre-vote refusal
				// names the voter's own term, which it did not change.
				want := raft.Message{Type: respTyp, From: 1, To: 2, Term: 3, Reject: !tc.grant}
				if !tc.grant {
					// A refusal carries the voter's commit index and its
					// entry's term (commitHint).
					want.Commit, want.LogTerm = 1, 1
				}
				if pre && !tc.grant {
					want.Term = 2
				}
				diffMsgs(t, []raft.Message{want}, rd.Messages)
				wantVote := raft.None
				if tc.grant && !pre {
					wantVote = 2
				}
				if v := n.Status().Vote; v != wantVote {
					t.Errorf("vote %d recorded, want %d", v, wantVote)
				}
			})
		}
	}
}

// Raft §5.4.2 (Figure 8): "Raft never commits log entries from previous
// terms by counting replicas. Only log entries from the leader's current
// term are committed by counting replicas"; the earlier ones then commit
// with them.
func TestPaperLeaderCommitsOnlyCurrentTermEntries(t *testing.T) {
	// Node 1 restarts with 2/2 uncommitted and becomes leader of term 3,
	// appending its no-op 3/3.
	n := newNode(t, 1, raft.HardState{Term: 2, Commit: 1}, []uint64{1, 2})
	n.Campaign()
	handle(n)
	step(t, n, raft.Message{Type: raft.MsgVoteResp, From: 2, To: 1, Term: 3})
	if st := n.Status(); st.Role != raft.RoleLeader || st.Term != 3 || st.LastIndex != 3 {
		t.Fatalf("node 1: %s term=%d last=%d, want leader of term 3 with its no-op at 3", st.Role, st.Term, st.LastIndex)
	}
	ack := func(from, index uint64) raft.Ready {
		return step(t, n, raft.Message{Type: raft.MsgAppResp, From: from, To: 1, Term: 3, Index: index})
	}
	ack(2, 2)
	ack(3, 2)
	if c := n.Status().Commit; c != 1 {
		t.Fatalf("commit index %d with the term-2 entry 2 on every node, want 1: a previous-term entry was committed by counting replicas", c)
	}
	rd := ack(2, 3)
	if c := n.Status().Commit; c != 3 {
		t.Fatalf("commit index %d with the term-3 entry 3 on a majority, want 3", c)
	}
	if d := cmp.Diff(ents(2, 2, 3), rd.CommittedEntries, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("committed entries (-want +got):\n%s", d)
	}
}

// Raft §8: a server that is not the leader rejects a client request and
// supplies the most recent leader it has heard from.
func TestProposalOnNonLeaderNamesTheLeader(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*raft.Node)
		want  uint64
	}{
		{"follower that heard from a leader", func(n *raft.Node) {
			_ = n.Step(raft.Message{Type: raft.MsgHeartbeat, From: 3, To: 1, Term: 1})
		}, 3},
		{"follower without a leader", func(*raft.Node) {}, raft.None},
		{"candidate", func(n *raft.Node) { n.Campaign() }, raft.None},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNode(t, 1, raft.HardState{}, nil)
			tc.setup(n)
			handle(n)
			idx, term, err := n.Propose([]byte("x"))
			if !errors.Is(err, raft.ErrNotLeader) {
				t.Fatalf("Propose on a %s: err = %v, want one matching raft.ErrNotLeader", tc.name, err)
			}
			var nle *raft.NotLeaderError
			if !errors.As(err, &nle) || nle.Leader != tc.want {
				t.Errorf("Propose error %#v, want a *raft.NotLeaderError naming leader %d", err, tc.want)
			}
			if idx != 0 || term != 0 || n.HasReady() {
				t.Errorf("a refused proposal returned index %d term %d, HasReady=%t; want nothing appended", idx, term, n.HasReady())
			}
		})
	}
}

// Dissertation §9.6: a pre-vote is granted only "if the candidate's log is
// sufficiently up-to-date, and the voters have not received heartbeats from
// a valid leader for at least a baseline election timeout".
//
// A follower that has just heard from its leader refuses a pre-vote, even
// with CheckQuorum off, so a rejoining node cannot depose a working leader.
func TestPreVoteRefusedWhileLeaderIsLive(t *testing.T) {
	n := newNode(t, 2, raft.HardState{Term: 1, Vote: 1, Commit: 1}, []uint64{1}, preVote)
	handle(n)
	step(t, n, raft.Message{Type: raft.MsgHeartbeat, From: 1, To: 2, Term: 1, Commit: 1})
	rd := step(t, n, raft.Message{Type: raft.MsgPreVote, From: 3, To: 2, Term: 2, LogTerm: 1, Index: 1})
	for _, m := range rd.Messages {
		if m.Type == raft.MsgPreVoteResp && !m.Reject {
			t.Errorf("a follower that heard from leader 1 in this very tick granted node 3's pre-vote: %v", m)
		}
	}
}

// Raft §5.1: servers retry RPCs that get no response, and Ready.Messages
// promises "Sending may fail or reorder; Raft tolerates that."
//
// A leader whose MsgSnap is lost, with no ReportSnapshot from the host,
// gives up on it after SnapshotTimeoutTicks and sends the snapshot again.
func TestLostSnapshotIsResent(t *testing.T) {
	c := newCluster()
	c.start(t, 3, raft.Config{ElectionTicks: 10, HeartbeatTicks: 1})
	var w strings.Builder
	leader, follower := c.members[0], c.members[2]
	leader.node.Campaign()
	c.stabilize(t, &w, c.members)
	c.isolated[follower.id] = true
	if _, _, err := leader.node.Propose([]byte("a")); err != nil {
		t.Fatal(err)
	}
	c.stabilize(t, &w, c.members)
	commit := leader.node.Status().Commit
	snap, err := leader.node.Compact(commit, leader.sm.encode(commit))
	if err != nil {
		t.Fatal(err)
	}
	leader.store.compact(snap)
	clear(c.isolated)
	lost := 0
	c.lose = func(m raft.Message) bool {
		if m.Type == raft.MsgSnap && lost == 0 {
			lost++
			return true
		}
		return false
	}
	for range 10*10 + 10 { // the default snapshot timeout, and a bit
		leader.node.Tick()
		c.stabilize(t, &w, c.members)
	}
	if lost != 1 {
		t.Fatalf("the leader sent no snapshot to lose")
	}
	if got := follower.node.Status().Commit; got != commit {
		t.Errorf("follower commit index %d after the snapshot timeout, want %d: replication never resumed after the lost MsgSnap", got, commit)
	}
}

// A candidate that a voter refuses learns the voter's commit index when its
// own log holds that entry (commitHint): across a membership change this
// lets it apply the entry that moved it to a new configuration, where it can
// win without the refusing (removed) voter.
func TestCandidateLearnsCommitFromRefusal(t *testing.T) {
	n := newNode(t, 1, raft.HardState{Term: 2, Commit: 1}, []uint64{1, 2}) // entries 1/1 2/2
	handle(n)
	n.Campaign()
	handle(n)
	for _, tc := range []struct {
		name         string
		commit, term uint64
		want         uint64
	}{
		{"an entry the candidate does not hold", 3, 2, 1},
		{"a matching index but another term", 2, 1, 1},
		{"a matching entry", 2, 2, 2},
		{"a smaller commit", 1, 1, 2},
	} {
		step(t, n, raft.Message{Type: raft.MsgVoteResp, From: 2, To: 1, Term: 3, Reject: true, Commit: tc.commit, LogTerm: tc.term})
		if got := n.Status().Commit; got != tc.want {
			t.Errorf("after a refusal hinting %d/%d (%s): commit %d, want %d", tc.term, tc.commit, tc.name, got, tc.want)
		}
	}
}

// A refused vote request moves the voter to the candidate's term but does not
// restart its election timer (Raft Figure 2: only granting a vote does), so a
// node with the most up-to-date log still campaigns while candidates with
// stale logs keep asking.
func TestRefusedVoteDoesNotRestartTheElectionTimer(t *testing.T) {
	n := newNode(t, 1, raft.HardState{Term: 2, Commit: 2}, []uint64{1, 2})
	handle(n)
	term := uint64(2)
	for tick := 0; tick < 20; tick++ {
		if n.Status().Role == raft.RoleCandidate {
			return
		}
		term++
		step(t, n, raft.Message{Type: raft.MsgVote, From: 2, To: 1, Term: term, LogTerm: 1, Index: 1})
		n.Tick()
		handle(n)
	}
	t.Fatalf("after 20 ticks (twice the election timeout) of refused stale candidates, node 1 is %v in term %d; want it to campaign", n.Status().Role, n.Status().Term)
}
