package raft

// Hooks for tests in package raft_test that must prove the simulator catches
// a broken protocol. They exist only in test builds.

// BreakCommitPreviousTerm makes nodes commit entries of earlier terms by
// counting replicas, the error Raft §5.4.2 and Figure 8 warn about.
func BreakCommitPreviousTerm(c *Config) { c.unsafe.commitPreviousTerm = true }

// BreakVoteLogCheck makes nodes grant votes without the up-to-date log check
// of Raft §5.4.1.
func BreakVoteLogCheck(c *Config) { c.unsafe.voteWithoutLogCheck = true }

// BreakAsyncDurability makes a leader that writes its log asynchronously
// count its entries toward a quorum before they are durable.
func BreakAsyncDurability(c *Config) { c.unsafe.asyncCountsSelf = true }

// BreakReadConfirmation makes a leader answer ReadIndex at once, without
// confirming with a quorum that it still leads (dissertation §6.4 step 3).
func BreakReadConfirmation(c *Config) { c.unsafe.readWithoutQuorum = true }
