package rsm

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/kv"
	"github.com/flotilla-dev/flotilla/node"
	"github.com/google/go-cmp/cmp"
)

// outcome is how the Machine answered one command.
type outcome int

const (
	applied   outcome = iota + 1 // the App ran it
	retried                      // the remembered result, App not called
	stale                        // ErrStaleSequence, App not called
	malformed                    // ErrMalformedEnvelope, App not called
)

func (o outcome) String() string {
	return map[outcome]string{applied: "applied", retried: "retried", stale: "stale", malformed: "malformed"}[o]
}

// step is one command of a scripted test: an envelope (or raw bytes, when
// raw is set) and the expected outcome.
type step struct {
	client, seq uint64
	now         int64
	raw         []byte
	want        outcome
}

// runSteps applies steps to m and checks each outcome; a retry must return
// the result of the last applied command of its session, byte for byte.
func runSteps(t *testing.T, m *Machine, app *fakeApp, steps []step) {
	t.Helper()
	d := &driver{t: t, m: m}
	last := map[uint64][]byte{}
	for i, s := range steps {
		before := len(app.calls)
		var res []byte
		if s.raw != nil {
			res = d.raw(s.raw)
		} else {
			res = d.send(s.client, s.seq, s.now, fmt.Sprintf("c%d.%d", s.client, s.seq))
		}
		ran := len(app.calls) - before
		payload, err := DecodeResult(res)
		var got outcome
		switch {
		case errors.Is(err, ErrStaleSequence):
			got = stale
		case errors.Is(err, ErrMalformedEnvelope):
			got = malformed
		case err != nil:
			t.Fatalf("step %d: DecodeResult: %v", i, err)
		case ran == 1:
			got = applied
		case ran == 0:
			got = retried
		}
		if (got == applied) != (ran == 1) || ran > 1 {
			t.Fatalf("step %d: outcome %v but the App ran %d times", i, got, ran)
		}
		if got != s.want {
			t.Fatalf("step %d (client %d seq %d now %d): %v, want %v", i, s.client, s.seq, s.now, got, s.want)
		}
		switch got {
		case applied:
			if want := fmt.Sprintf("%d:c%d.%d", d.index, s.client, s.seq); string(payload) != want {
				t.Fatalf("step %d: payload %q, want %q", i, payload, want)
			}
			if s.client != 0 {
				last[s.client] = payload
			}
		case retried:
			if diff := cmp.Diff(string(last[s.client]), string(payload)); diff != "" {
				t.Fatalf("step %d: retry result differs from the original (-want +got):\n%s", i, diff)
			}
		}
	}
}

func TestDedupRules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"new session applies any seq", []step{{client: 1, seq: 5, want: applied}}},
		{"next seq applies", []step{{client: 1, seq: 1, want: applied}, {client: 1, seq: 2, want: applied}}},
		{"same seq is a retry", []step{
			{client: 1, seq: 1, want: applied}, {client: 1, seq: 1, want: retried}, {client: 1, seq: 1, want: retried}}},
		{"older seq is stale", []step{
			{client: 1, seq: 1, want: applied}, {client: 1, seq: 2, want: applied},
			{client: 1, seq: 1, want: stale}, {client: 1, seq: 2, want: retried}}},
		{"gap applies, then the skipped seq is stale", []step{
			{client: 1, seq: 1, want: applied}, {client: 1, seq: 4, want: applied},
			{client: 1, seq: 3, want: stale}, {client: 1, seq: 4, want: retried}}},
		{"seq zero is an ordinary seq", []step{
			{client: 1, seq: 0, want: applied}, {client: 1, seq: 0, want: retried}, {client: 1, seq: 1, want: applied}}},
		{"client 0 has no session", []step{
			{client: 0, seq: 1, want: applied}, {client: 0, seq: 1, want: applied}, {client: 0, seq: 0, want: applied}}},
		{"sessions are independent", []step{
			{client: 1, seq: 1, want: applied}, {client: 2, seq: 1, want: applied},
			{client: 1, seq: 1, want: retried}, {client: 2, seq: 2, want: applied}, {client: 1, seq: 2, want: applied}}},
		{"malformed changes nothing", []step{
			{client: 1, seq: 1, want: applied}, {raw: []byte{1, 2, 3}, want: malformed},
			{raw: []byte{}, want: malformed}, {client: 1, seq: 1, want: retried}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := &fakeApp{}
			runSteps(t, New(app, Options{}), app, tc.steps)
		})
	}
}

func TestExpiry(t *testing.T) {
	const minute = int64(time.Minute / time.Millisecond)
	for _, tc := range []struct {
		name  string
		opts  Options
		steps []step
	}{
		{"idle exactly the TTL is kept", Options{SessionTTL: time.Minute}, []step{
			{client: 1, seq: 1, now: 1000, want: applied}, {client: 2, seq: 1, now: 1000 + minute, want: applied},
			{client: 1, seq: 1, now: 1000 + minute, want: retried}}},
		{"idle longer than the TTL expires", Options{SessionTTL: time.Minute}, []step{
			{client: 1, seq: 1, now: 1000, want: applied}, {client: 2, seq: 1, now: 1001 + minute, want: applied},
			{client: 1, seq: 1, now: 0, want: applied}}},
		{"expiry uses the max Now, not the proposer's", Options{SessionTTL: time.Minute}, []step{
			{client: 1, seq: 1, now: 1000, want: applied}, {client: 0, now: 1001 + minute, want: applied},
			{client: 1, seq: 1, now: 1000, want: applied}}},
		{"a retry keeps the session alive", Options{SessionTTL: time.Minute}, []step{
			{client: 1, seq: 1, now: 0, want: applied}, {client: 1, seq: 1, now: minute, want: retried},
			{client: 1, seq: 1, now: 2 * minute, want: retried}, {client: 1, seq: 1, now: 3 * minute, want: retried}}},
		{"a stale command keeps the session alive", Options{SessionTTL: time.Minute}, []step{
			{client: 1, seq: 2, now: 0, want: applied}, {client: 1, seq: 1, now: minute, want: stale},
			{client: 1, seq: 2, now: 2 * minute, want: retried}}},
		{"negative and backward clocks do not expire", Options{SessionTTL: time.Minute}, []step{
			{client: 1, seq: 1, now: -5 * minute, want: applied}, {client: 2, seq: 1, now: -1, want: applied},
			{client: 1, seq: 1, now: 0, want: retried}, {client: 1, seq: 1, now: minute, want: retried}}},
		{"LRU session is expired beyond MaxSessions", Options{MaxSessions: 2}, []step{
			{client: 1, seq: 1, want: applied}, {client: 2, seq: 1, want: applied},
			{client: 1, seq: 2, want: applied}, // 2 is now the least recently used
			{client: 3, seq: 1, want: applied}, // expires 2
			{client: 1, seq: 2, want: retried}, {client: 3, seq: 1, want: retried},
			{client: 2, seq: 1, want: applied}}}, // fresh; expires 1
		{"a retry counts as use for LRU", Options{MaxSessions: 2}, []step{
			{client: 1, seq: 1, want: applied}, {client: 2, seq: 1, want: applied},
			{client: 1, seq: 1, want: retried}, {client: 3, seq: 1, want: applied}, // expires 2
			{client: 1, seq: 1, want: retried}, {client: 2, seq: 1, want: applied}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := &fakeApp{}
			runSteps(t, New(app, tc.opts), app, tc.steps)
		})
	}
}

func TestExpiryDropsAllIdleSessions(t *testing.T) {
	app := &fakeApp{}
	m := New(app, Options{SessionTTL: time.Second})
	d := &driver{t: t, m: m}
	for c := uint64(1); c <= 100; c++ {
		d.send(c, 1, int64(c), "x")
	}
	d.send(0, 0, 1050, "tick") // sessions 1..49 (last active before 50 ms) are idle > 1 s
	if got, want := m.Sessions(), 51; got != want {
		t.Errorf("Sessions = %d, want %d", got, want)
	}
	if got := m.Clock(); got != 1050 {
		t.Errorf("Clock = %d, want 1050", got)
	}
}

func TestOptionsDefaults(t *testing.T) {
	m := New(&fakeApp{}, Options{SessionTTL: -1, MaxSessions: -1})
	if m.opts.SessionTTL != DefaultSessionTTL || m.opts.MaxSessions != DefaultMaxSessions {
		t.Errorf("defaults = %+v", m.opts)
	}
	if m := New(&fakeApp{}, Options{SessionTTL: time.Microsecond}); m.ttl != 1 {
		t.Errorf("sub-millisecond TTL gives ttl %d ms, want 1", m.ttl)
	}
}

// TestRetryKV applies the same envelope twice to a kv.Store through the
// Machine: the store sees it once and both callers get the same result.
func TestRetryKV(t *testing.T) {
	store := kv.NewStore()
	m := New(store, Options{})
	appendCmd, err := kv.EncodeCommand(kv.Command{Op: kv.OpAppend, Key: []byte("k"), Value: []byte("ab")})
	if err != nil {
		t.Fatal(err)
	}
	env := EncodeEnvelope(Envelope{ClientID: 42, Seq: 1, Now: 1, Cmd: appendCmd})
	// The retry is committed twice: once in the same batch and once later.
	out := m.Apply([]node.Command{{Index: 1, Term: 1, Data: env}, {Index: 2, Term: 1, Data: env}})
	out = append(out, m.Apply([]node.Command{{Index: 3, Term: 2, Data: env}})...)
	for i, res := range out {
		payload, err := DecodeResult(res)
		if err != nil {
			t.Fatalf("result %d: %v", i, err)
		}
		r, err := kv.DecodeResult(payload)
		if err != nil {
			t.Fatalf("result %d: kv.DecodeResult: %v", i, err)
		}
		if r.Version != 1 || r.Found || r.Err != "" {
			t.Errorf("result %d = %+v, want the first apply's (Version 1, not Found)", i, r)
		}
	}
	kvp, ok := store.Get([]byte("k"))
	if !ok || string(kvp.Value) != "ab" || kvp.Version != 1 {
		t.Errorf("store has %q version %d (found %v), want \"ab\" version 1: the Append ran more than once", kvp.Value, kvp.Version, ok)
	}

	// The next seq applies; an unsessioned command applies every time.
	next := EncodeEnvelope(Envelope{ClientID: 42, Seq: 2, Now: 2, Cmd: appendCmd})
	free := EncodeEnvelope(Envelope{Now: 3, Cmd: appendCmd})
	m.Apply([]node.Command{{Index: 4, Data: next}, {Index: 5, Data: free}, {Index: 6, Data: free}})
	if kvp, _ := store.Get([]byte("k")); string(kvp.Value) != "abababab" || kvp.Version != 6 {
		t.Errorf("store has %q version %d, want \"abababab\" version 6", kvp.Value, kvp.Version)
	}

	// A malformed kv command inside a good envelope is the App's error
	// result, remembered like any other.
	bad := EncodeEnvelope(Envelope{ClientID: 42, Seq: 3, Now: 4, Cmd: []byte{0xff}})
	res := m.Apply([]node.Command{{Index: 7, Data: bad}, {Index: 8, Data: bad}})
	for i, b := range res {
		payload, err := DecodeResult(b)
		if err != nil {
			t.Fatalf("bad kv command %d: %v", i, err)
		}
		if r, err := kv.DecodeResult(payload); err != nil || !errors.Is(r.AsError(), kv.ErrMalformed) {
			t.Errorf("bad kv command %d: result %+v, %v; want kv.ErrMalformed", i, r, err)
		}
	}
	if diff := cmp.Diff(res[0], res[1]); diff != "" {
		t.Errorf("retried error result differs:\n%s", diff)
	}
}

// TestResultsAreCopies checks that a caller modifying a returned result
// cannot change what a later retry returns.
func TestResultsAreCopies(t *testing.T) {
	m := New(&fakeApp{}, Options{})
	d := &driver{t: t, m: m}
	first := d.send(1, 1, 0, "x")
	want := string(first)
	first[1] = '!'
	if got := d.send(1, 1, 0, "x"); string(got) != want {
		t.Errorf("retry returned %q, want %q", got, want)
	}
}
