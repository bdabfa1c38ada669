// Package rsm is flotilla's replicated-state-machine layer: it wraps a
// deterministic application (an App, such as kv.Store) in a
// node.StateMachine that gives clients exactly-once sessions.
//
// A client tags every command with its ClientID and a per-client sequence
// number in an Envelope and proposes the encoded envelope. When the entry
// is applied, the Machine consults its dedup table (one session per
// client: the last sequence number, its result, and when it was last
// active) so that a command retried after a timeout is applied once and
// its original result is returned again:
//
//	data := rsm.EncodeEnvelope(rsm.Envelope{ClientID: id, Seq: seq, Now: nowMillis, Cmd: cmd})
//	res, err := node.Propose(ctx, data)   // retry with the same data on timeout
//	payload, err := rsm.DecodeResult(res) // payload is the App's result
//
// The rules, with ClientID 0 meaning "no session" (apply every time):
//
//	Seq == last      a retry: the remembered result, App not called
//	Seq <  last      ErrStaleSequence, App not called
//	Seq >  last      applied and remembered (gaps are allowed)
//	unknown session  applied and remembered (new, or expired)
//
// Sessions expire by a rule that is a pure function of the log: the
// Machine's clock is the largest Envelope.Now applied so far, and a
// session idle for longer than Options.SessionTTL by that clock is
// dropped; beyond Options.MaxSessions the least recently used session is
// dropped. Every replica therefore expires the same sessions at the same
// log index. The dedup table is part of Snapshot, so a replica restored
// from a snapshot deduplicates exactly like one that applied the log.
//
// Every result the Machine returns is a small encoding (a status byte and a
// payload) that DecodeResult turns back into the App's result or an error.
// A malformed envelope yields an error result and changes nothing. All
// decoders (DecodeEnvelope, DecodeResult, Machine.Restore) bound sizes
// before they allocate. The formats are described in docs/rsm.md.
package rsm
