package rsm

import (
	"context"
	"time"

	"github.com/flotilla-dev/flotilla/node"
)

// Host runs an App on a replicated log: a node.Node whose state machine is
// the App wrapped in a Machine. It is what a service builds on: Do proposes
// a command under a client session, waits until this member has applied
// it, and returns the App's result.
type Host struct {
	n   *node.Node
	m   *Machine
	app App
	now func() time.Time
}

// Start starts a node with cfg whose state machine is app under a Machine
// with opts. app must be in its initial state; the node restores it from
// its latest snapshot and replays its log.
func Start(cfg node.Config, app App, opts Options) (*Host, error) {
	m := New(app, opts)
	n, err := node.Start(cfg, m)
	if err != nil {
		return nil, err
	}
	return &Host{n: n, m: m, app: app, now: time.Now}, nil
}

// Do proposes cmd for the session (clientID, seq) and returns the App's
// result once this member has applied it: after a write is acknowledged
// by a quorum and applied, or, for a read proposed through the log, at a
// point that is linearizable with every write acknowledged before Do was
// called. clientID 0 means no session (a retry may apply twice).
//
// The envelope's clock (Envelope.Now) is this member's wall clock: only
// the leader accepts proposals, so the log's clock is the leaders' clocks.
//
// Errors are the node's (a *node.NotLeaderError on a follower,
// node.ErrProposalLost, node.ErrOutcomeUnknown, node.ErrStopped, the
// context's error) or this package's session errors. After an outcome that
// is unknown, retry with the same (clientID, seq): the session answers a
// duplicate with the first result.
func (h *Host) Do(ctx context.Context, clientID, seq uint64, cmd []byte) ([]byte, error) {
	env := EncodeEnvelope(Envelope{ClientID: clientID, Seq: seq, Now: h.now().UnixMilli(), Cmd: cmd})
	res, err := h.n.Propose(ctx, env)
	if err != nil {
		return nil, err
	}
	return DecodeResult(res)
}

// Node returns the underlying node, for its status, metrics and transport.
func (h *Host) Node() *node.Node { return h.n }

// Machine returns the session layer, for its session count and clock.
func (h *Host) Machine() *Machine { return h.m }

// Stop stops the node (see node.Node.Stop).
func (h *Host) Stop() error { return h.n.Stop() }
