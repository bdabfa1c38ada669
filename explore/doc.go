// Package explore is an exhaustive, bounded model checker over the pure Raft
// core (package raft). It checks the real code instead of a specification.
//
// A world state is a small cluster of raft.Nodes, each with the durable
// storage its Readies asked for, the multiset of in-flight messages and
// which nodes are crashed. A raft.Node cannot be cloned, so a state is named
// by the sequence of actions that reaches it from the initial state, and
// reached by replaying that sequence: the core is deterministic given its
// inputs and a seeded Rand. To expand a state, the search replays it once,
// then derives each successor from a copy of that world in which only the
// core the action steps is rebuilt (from its own recorded inputs).
//
// Explore searches breadth first over every action sequence up to a depth:
// campaign (an election timeout fires), heartbeat (a leader ticks), propose,
// handle one Ready (persist, send, apply, Advance: its own action, so that
// other nodes step between one node's Readies), deliver, duplicate or drop
// an in-flight message, crash and restart. After every action it checks
// the invariants of Raft Figure 3 as package sim does: Election Safety,
// Leader Append-Only, Log Matching, Leader Completeness, State Machine
// Safety, that terms and commit indexes never move back and that entries
// are applied in order. States are pruned by a hash of their observable state
// (see world.hash for what it covers and what it leaves out) and bounded
// by Options (messages in flight, terms, crashes, proposals).
//
// Options.BrokenHost and Options.BrokenEntries break the Ready contract on
// purpose (the host does not persist votes; the host loses entries it
// acknowledged), and the tests show the explorer finds the resulting
// Election Safety and Leader Completeness violations with shortest traces.
package explore
