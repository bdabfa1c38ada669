// Package node is the driver that makes a pure raft.Node real: it owns the
// core, a ticker, the write-ahead log (package wal) and the peer transport
// (package transport), and runs the Ready loop of raft.Ready's contract on
// one goroutine. Services hand it a StateMachine and propose commands with
// a context; Propose returns once the command is applied, with the state
// machine's result.
//
// The loop overlaps what Raft allows to overlap (dissertation §10.2.1): a
// leader sends its appends before its own log write, because the core counts
// the leader toward a quorum only once Advance reports the write durable.
// Everything else follows the contract: persist, send, apply, advance.
package node
