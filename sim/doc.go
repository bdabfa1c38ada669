// Package sim is a deterministic simulator that runs several pure Raft cores
// (package raft) against a faulty network and crashing hosts, under a
// virtual clock, and checks Raft's safety properties after every step.
//
// One int64 seed determines the whole run: the cluster size (unless fixed),
// the protocol options, every latency, drop, duplicate, partition, crash and
// client proposal, and so the exact event trace. A failing seed is replayed
// with the command printed in its Violation.
//
// The checks, after every event (Raft Figure 3 and more):
//
//   - Election Safety: at most one leader per term;
//   - Leader Append-Only: a leader never overwrites or deletes its entries;
//   - Log Matching: two logs with an entry of the same index and term hold
//     the same entries up to it (checked with a hash chain over each log);
//   - Leader Completeness: a leader holds every entry committed in earlier
//     terms;
//   - State Machine Safety: every node applies the same command at each
//     index (checked with a hash chain over each state machine);
//   - commit indexes never move back, and entries are applied in order.
//
// Liveness: when the faulty phase ends, the network heals and every node
// restarts; a leader must be elected and every acknowledged command applied
// on every node within a bounded virtual time.
package sim
