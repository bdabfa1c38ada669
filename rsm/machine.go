package rsm

import (
	"bytes"
	"fmt"
	"sync"
	"time"

	"github.com/flotilla-dev/flotilla/node"
)

// App is the deterministic application under the session layer.
// kv.Store satisfies it. The Machine calls Apply with the log index of
// each command it applies, in strictly increasing order, and never for a
// retried or stale command; Snapshot and Restore as node.StateMachine
// describes. Apply must not retain cmd.
type App interface {
	// Apply applies cmd, the command of the entry at log index index, and
	// returns its result.
	Apply(index uint64, cmd []byte) []byte
	// Snapshot returns an image of the state after the last Apply.
	Snapshot() ([]byte, error)
	// Restore replaces the state with a Snapshot image, or returns an
	// error and leaves the state unchanged.
	Restore(data []byte) error
}

// Defaults for Options.
const (
	// DefaultSessionTTL is the default Options.SessionTTL.
	DefaultSessionTTL = 10 * time.Minute
	// DefaultMaxSessions is the default Options.MaxSessions.
	DefaultMaxSessions = 100000
)

// Options configures a Machine. Every replica of a group must use the same
// Options: they decide which sessions expire, so replicas that differ
// would answer retries differently.
type Options struct {
	// SessionTTL is how long a session may be idle before it expires, as
	// measured by the log's clock (the largest Envelope.Now applied so
	// far), never by a replica's own clock. A client must finish retrying
	// a command well within it: a retry that arrives after its session
	// expired is applied again. Truncated to milliseconds; zero or negative
	// means DefaultSessionTTL.
	SessionTTL time.Duration
	// MaxSessions bounds the dedup table; opening one more session first
	// expires the least recently used one. Zero or negative means
	// DefaultMaxSessions.
	MaxSessions int
}

func (o Options) withDefaults() Options {
	if o.SessionTTL <= 0 {
		o.SessionTTL = DefaultSessionTTL
	}
	if o.SessionTTL < time.Millisecond {
		o.SessionTTL = time.Millisecond
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = DefaultMaxSessions
	}
	return o
}

// Machine is a node.StateMachine that wraps an App with exactly-once client
// sessions (see the package documentation for the rules).
//
// The node calls Apply, Snapshot and Restore from one goroutine; the
// Machine also locks, so Sessions and Clock may be called from any
// goroutine. A Machine owns its App: nothing else may call the App's
// Apply or Restore.
type Machine struct {
	app  App
	opts Options
	// ttl is opts.SessionTTL in milliseconds, >= 1.
	ttl int64

	mu sync.Mutex
	// clock is the largest Envelope.Now applied so far, and 0 before any
	// (or if all were negative); never decreases. Guarded by mu.
	clock int64
	// sessions is the dedup table; no session in it is idle for longer
	// than ttl by clock, and it holds at most opts.MaxSessions sessions.
	// Guarded by mu.
	sessions *table
}

// New returns a Machine with no sessions that wraps app, which should be
// in its initial state (or be restored through the Machine).
func New(app App, opts Options) *Machine {
	o := opts.withDefaults()
	return &Machine{app: app, opts: o, ttl: o.SessionTTL.Milliseconds(), sessions: newTable()}
}

// Apply applies committed commands in log order and returns one encoded
// result per command (decode it with DecodeResult). Each command's Data
// must be an encoded Envelope; one that is not yields an
// ErrMalformedEnvelope result and changes nothing. For a well-formed
// envelope the Machine first advances its clock to Now (if later) and
// expires idle sessions, then applies the session rules. Apply is
// deterministic: the same commands give the same results and state on
// every replica.
func (m *Machine) Apply(cmds []node.Command) [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([][]byte, len(cmds))
	for i, c := range cmds {
		out[i] = m.applyOne(c)
	}
	return out
}

// applyOne applies one command; m.mu is held.
func (m *Machine) applyOne(c node.Command) []byte {
	e, err := DecodeEnvelope(c.Data)
	if err != nil {
		return errResult(statusMalformed, err)
	}
	m.advance(e.Now)
	if e.ClientID == 0 {
		return okResult(m.app.Apply(c.Index, e.Cmd))
	}
	s := m.sessions.get(e.ClientID)
	if s != nil {
		switch {
		case e.Seq == s.seq:
			m.sessions.touch(s, c.Index, m.clock)
			return bytes.Clone(s.result)
		case e.Seq < s.seq:
			m.sessions.touch(s, c.Index, m.clock)
			return errResult(statusStale, fmt.Errorf("%w: client %d sent seq %d, but seq %d is already applied",
				ErrStaleSequence, e.ClientID, e.Seq, s.seq))
		}
	}
	res := okResult(m.app.Apply(c.Index, e.Cmd))
	if s == nil {
		m.makeRoom()
		s = &session{client: e.ClientID}
		m.sessions.push(s)
	}
	s.seq, s.result = e.Seq, bytes.Clone(res)
	m.sessions.touch(s, c.Index, m.clock)
	return res
}

// advance moves the clock to now if that is later, then expires every
// session idle for longer than the TTL. The idle sessions are a prefix of
// the LRU list, so this costs O(1) per expired session.
func (m *Machine) advance(now int64) {
	if now > m.clock {
		m.clock = now
	}
	for s := m.sessions.oldest(); s != nil && m.clock-s.lastActive > m.ttl; s = m.sessions.oldest() {
		m.sessions.remove(s)
	}
}

// makeRoom expires least recently used sessions until one more fits.
func (m *Machine) makeRoom() {
	for m.sessions.len() >= m.opts.MaxSessions {
		m.sessions.remove(m.sessions.oldest())
	}
}

// Sessions returns the number of live sessions in the dedup table.
func (m *Machine) Sessions() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sessions.len()
}

// Clock returns the Machine's clock: the largest Envelope.Now applied so
// far (Unix milliseconds), or 0 before any.
func (m *Machine) Clock() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.clock
}
