// Package kv is flotilla's key-value state machine: a deterministic map from
// byte-string keys to byte-string values, ordered by key, in which every key
// carries a version (the log index of its last write).
//
// The package holds only the state machine and the wire encoding of its
// commands and results. Replication, exactly-once client sessions and
// linearizable reads belong to the rsm layer, which wraps these commands;
// the gRPC API and the client are built on top of both.
//
//	cmd, err := kv.EncodeCommand(kv.Command{Op: kv.OpPut, Key: k, Value: v})
//	// ... cmd travels through the replicated log ...
//	res, err := kv.DecodeResult(store.Apply(index, cmd))
//
// Apply is deterministic: replicas that apply the same commands at the same
// indices hold the same contents, which Hash summarizes in 64 bits. A
// malformed command is answered with a Result whose Err is set and changes
// nothing. Every decoder (DecodeCommand, DecodeResult, Store.Restore) bounds
// sizes before it allocates; the limits are MaxKeyBytes, MaxValueBytes,
// MaxCommandBytes, MaxRangeLimit, MaxRangeBytes and MaxResultBytes. The
// formats and semantics are described in docs/kv.md.
package kv
