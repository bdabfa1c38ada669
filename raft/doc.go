// Package raft is a pure implementation of the Raft consensus algorithm
// (Ongaro and Ousterhout, "In Search of an Understandable Consensus
// Algorithm", and Ongaro's dissertation, "Consensus: Bridging Theory and
// Practice").
//
// A Node is a deterministic state machine. It starts no goroutines, reads no
// clock, does no I/O and draws randomness only from the Rand it is given. The
// host drives it:
//
//	for {
//		// feed it: n.Tick() on a timer, n.Step(msg) for each received
//		// message, n.Propose(data) for new commands
//		if n.HasReady() {
//			rd := n.Ready()
//			// 1. persist rd.Snapshot, rd.Entries, rd.HardState (sync if rd.MustSync)
//			// 2. send rd.Messages
//			// 3. apply rd.Snapshot, then rd.CommittedEntries
//			n.Advance(rd)
//		}
//	}
//
// The exact contract is on Ready. Because a Node is pure, the same inputs
// give the same outputs; package sim runs many nodes against a faulty
// simulated network to check Raft's safety properties under one seed.
//
// Implemented: leader election with randomized timeouts, pre-vote
// (dissertation §9.6), check-quorum (§6.2), log replication with fast
// conflict back-off and per-follower flow control (probe and replicate
// states, a bounded window of in-flight messages), commitment by counting
// current-term replicas (Raft §5.4.2), log compaction with snapshots
// (Raft §7), and linearizable reads without a log write: ReadIndex with one
// heartbeat round shared by all reads of a Ready, or leader leases
// (dissertation §6.4), membership changes in one step or through a joint
// configuration (§4.1, §4.3) with learners and their opt-in promotion, and
// leadership transfer (§3.10). Quorums are computed through package quorum.
package raft
