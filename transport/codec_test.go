package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime/metrics"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"pgregory.net/rapid"

	"github.com/flotilla-dev/flotilla/raft"
)

// genUint64 draws small and large values alike, so that every varint length
// shows up.
func genUint64() *rapid.Generator[uint64] {
	return rapid.OneOf(rapid.Uint64Range(0, 300), rapid.Uint64())
}

func genEntry() *rapid.Generator[raft.Entry] {
	return rapid.Custom(func(t *rapid.T) raft.Entry {
		return raft.Entry{
			Term:  genUint64().Draw(t, "term"),
			Index: genUint64().Draw(t, "index"),
			Type:  raft.EntryType(rapid.Uint8().Draw(t, "type")),
			Data:  rapid.SliceOfN(rapid.Byte(), 0, 300).Draw(t, "data"),
		}
	})
}

// genMessage draws a valid message: any field values, but a non-zero Type.
func genMessage() *rapid.Generator[raft.Message] {
	return rapid.Custom(func(t *rapid.T) raft.Message {
		m := raft.Message{
			Type:       raft.MessageType(rapid.Uint8Range(1, 255).Draw(t, "type")),
			From:       genUint64().Draw(t, "from"),
			To:         genUint64().Draw(t, "to"),
			Term:       genUint64().Draw(t, "term"),
			LogTerm:    genUint64().Draw(t, "logTerm"),
			Index:      genUint64().Draw(t, "index"),
			Entries:    rapid.SliceOfN(genEntry(), 0, 20).Draw(t, "entries"),
			Commit:     genUint64().Draw(t, "commit"),
			Reject:     rapid.Bool().Draw(t, "reject"),
			RejectHint: genUint64().Draw(t, "rejectHint"),
			Context:    genUint64().Draw(t, "context"),
		}
		if rapid.Bool().Draw(t, "hasSnapshot") {
			m.Snapshot = &raft.Snapshot{
				Meta: raft.SnapshotMeta{
					Index: genUint64().Draw(t, "snapIndex"),
					Term:  genUint64().Draw(t, "snapTerm"),
					ConfState: raft.ConfState{
						Voters:         rapid.SliceOfN(genUint64(), 0, 9).Draw(t, "voters"),
						VotersOutgoing: rapid.SliceOfN(genUint64(), 0, 9).Draw(t, "outgoing"),
						Learners:       rapid.SliceOfN(genUint64(), 0, 9).Draw(t, "learners"),
						AutoLeave:      rapid.Bool().Draw(t, "autoLeave"),
					},
				},
				Data: rapid.SliceOfN(rapid.Byte(), 0, 2000).Draw(t, "snapData"),
			}
		}
		return m
	})
}

// sameMessage compares messages treating nil and empty slices alike, which
// is all the encoding promises.
var sameMessage = cmpopts.EquateEmpty()

func TestMessageRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := genMessage().Draw(t, "m")
		enc := appendMessage(nil, &m)
		if got, want := len(enc), messageSize(&m); got != want {
			t.Fatalf("encoded %d bytes, messageSize says %d", got, want)
		}
		got, err := decodeMessage(enc)
		if err != nil {
			t.Fatalf("decode(encode(m)): %v", err)
		}
		if diff := cmp.Diff(m, got, sameMessage); diff != "" {
			t.Fatalf("decode(encode(m)) differs (-want +got):\n%s", diff)
		}
	})
}

// TestDecodeRejectsEveryPrefix checks that no truncation of a valid
// encoding decodes: every field is needed.
func TestDecodeRejectsEveryPrefix(t *testing.T) {
	m := raft.Message{
		Type: raft.MsgApp, From: 1, To: 2, Term: 300, Index: 7, LogTerm: 3, Commit: 5,
		Entries:  []raft.Entry{{Term: 3, Index: 8, Type: raft.EntryNormal, Data: []byte("hello")}},
		Snapshot: &raft.Snapshot{Meta: raft.SnapshotMeta{Index: 4, Term: 2, ConfState: raft.ConfState{Voters: []uint64{1, 2, 3}}}, Data: []byte("img")},
	}
	enc := appendMessage(nil, &m)
	for i := range enc {
		if _, err := decodeMessage(enc[:i]); !errors.Is(err, ErrMalformed) {
			t.Errorf("decode of the first %d of %d bytes: err = %v, want ErrMalformed", i, len(enc), err)
		}
	}
}

func TestDecodeMalformed(t *testing.T) {
	uv := binary.AppendUvarint
	head := []byte{byte(raft.MsgApp), 0, 1, 2, 3, 4, 5, 6, 7} // type, flags, 7 fields
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"type zero", []byte{0, 0, 1, 2, 3, 4, 5, 6, 7, 0}},
		{"unknown flag", []byte{byte(raft.MsgApp), 0x80, 1, 2, 3, 4, 5, 6, 7, 0}},
		{"varint overflow", append([]byte{byte(raft.MsgApp), 0}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)},
		{"huge entry count", uv(append([]byte(nil), head...), 1<<62)},
		{"entry count beyond input", append(uv(append([]byte(nil), head...), 3), 1, 1, 1, 0)},
		{"entry data beyond input", append(uv(append([]byte(nil), head...), 1), 1, 1, 1, 100, 'x')},
		{"huge voter count", uv(append([]byte{byte(raft.MsgSnap), flagSnapshot, 1, 2, 3, 4, 5, 6, 7, 0}, 1, 1), 1<<40)},
		{"huge snapshot data", uv(append([]byte{byte(raft.MsgSnap), flagSnapshot, 1, 2, 3, 4, 5, 6, 7, 0}, 1, 1, 0), 1<<50)},
		{"trailing bytes", append(append([]byte(nil), head...), 0, 0)},
		{"context flag with a zero context", []byte{byte(raft.MsgHeartbeat), flagContext, 1, 2, 3, 4, 5, 6, 7, 0, 0}},
		{"context flag without a context", []byte{byte(raft.MsgHeartbeat), flagContext, 1, 2, 3, 4, 5, 6, 7, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := decodeMessage(tt.in)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("decodeMessage(%x) = %v, %v; want ErrMalformed", tt.in, m, err)
			}
		})
	}
}

// allocBound is the most decodeMessage may allocate for n input bytes: at
// most n/minEntryWire entries of 48 bytes, or n voters of 8, plus the
// Snapshot and an error message. The slack absorbs the runtime's accounting,
// which counts small objects a span at a time, so that allocations made
// earlier by the fuzzing engine can show up inside a measurement.
func allocBound(n int) uint64 { return uint64(n/minEntryWire*48+n*8) + 256<<10 }

// bytesAllocated returns how many heap bytes f allocates in the whole
// process (callers run nothing else meanwhile). It reads runtime/metrics,
// which counts large objects at once and does not stop the world as
// runtime.ReadMemStats does, keeping the fuzzer fast.
func bytesAllocated(f func()) uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	before := s[0].Value.Uint64()
	f()
	metrics.Read(s)
	return s[0].Value.Uint64() - before
}

// leastAllocated runs f up to three times while its allocations exceed
// bound and returns the smallest count: a deterministic over-allocation
// shows every time, accounting noise from other goroutines does not.
func leastAllocated(bound uint64, f func()) uint64 {
	least := bytesAllocated(f)
	for i := 0; i < 2 && least > bound; i++ {
		least = min(least, bytesAllocated(f))
	}
	return least
}

func TestDecodeHostileCountsDoNotAllocate(t *testing.T) {
	for _, count := range []uint64{1 << 16, 1 << 20, 1 << 40} {
		entries := binary.AppendUvarint([]byte{byte(raft.MsgApp), 0, 1, 2, 3, 4, 5, 6, 7}, count)
		voters := binary.AppendUvarint([]byte{byte(raft.MsgSnap), flagSnapshot, 1, 2, 3, 4, 5, 6, 7, 0, 1, 1}, count)
		for name, in := range map[string][]byte{"entries": entries, "voters": voters} {
			in = append(in, make([]byte, 64)...)
			got := leastAllocated(allocBound(len(in)), func() {
				if _, err := decodeMessage(in); err == nil {
					t.Errorf("decoded a message claiming %d %s in %d bytes", count, name, len(in))
				}
			})
			if got > allocBound(len(in)) {
				t.Errorf("claiming %d %s in %d bytes allocated %d bytes, bound %d", count, name, len(in), got, allocBound(len(in)))
			}
		}
	}
}

func FuzzDecodeMessage(f *testing.F) {
	seeds := []raft.Message{
		heartbeat(1, 2, 3),
		{Type: raft.MsgVote, From: 1, To: 2, Term: 9, LogTerm: 8, Index: 100},
		{Type: raft.MsgAppResp, From: 2, To: 1, Term: 9, Index: 5, Reject: true, RejectHint: 3},
		{Type: raft.MsgHeartbeat, From: 1, To: 2, Term: 9, Commit: 4, Context: 300},
		{Type: raft.MsgReadIndexResp, From: 1, To: 2, Term: 9, Index: 4, Context: 1 << 40},
		{Type: raft.MsgApp, From: 1, To: 3, Term: 2, Index: 10, LogTerm: 2, Commit: 9, Entries: []raft.Entry{
			{Term: 2, Index: 11, Type: raft.EntryNormal, Data: []byte("put x 1")},
			{Term: 2, Index: 12, Type: raft.EntryNormal},
		}},
		{Type: raft.MsgSnap, From: 1, To: 2, Term: 4, Snapshot: &raft.Snapshot{
			Meta: raft.SnapshotMeta{Index: 50, Term: 3, ConfState: raft.ConfState{Voters: []uint64{1, 2, 3}}},
			Data: []byte("state machine image"),
		}},
	}
	for i := range seeds {
		f.Add(appendMessage(nil, &seeds[i]))
	}
	f.Add([]byte{})
	f.Add([]byte{byte(raft.MsgApp), 0, 1, 2, 3, 4, 5, 6, 7, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, in []byte) {
		var m raft.Message
		var err error
		alloc := leastAllocated(allocBound(len(in)), func() { m, err = decodeMessage(in) })
		if alloc > allocBound(len(in)) {
			t.Fatalf("decoding %d bytes allocated %d bytes, bound %d", len(in), alloc, allocBound(len(in)))
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// Whatever decodes is a valid message: it must survive a round
		// trip unchanged, and re-encode to no more than it was read from
		// (the decoder accepts non-minimal varints, never shorter ones).
		enc := appendMessage(nil, &m)
		if len(enc) != messageSize(&m) || len(enc) > len(in) {
			t.Fatalf("re-encoding gives %d bytes, messageSize %d, input %d", len(enc), messageSize(&m), len(in))
		}
		back, err := decodeMessage(enc)
		if err != nil {
			t.Fatalf("decoding the re-encoding of %v: %v", m, err)
		}
		if diff := cmp.Diff(m, back, sameMessage); diff != "" {
			t.Fatalf("round trip differs (-first +second):\n%s", diff)
		}
	})
}

// TestEncodingGolden pins the wire format described in docs/transport.md.
func TestEncodingGolden(t *testing.T) {
	hb := raft.Message{Type: raft.MsgHeartbeat, From: 1, To: 2, Term: 3, Commit: 7}
	want := []byte{byte(raft.MsgHeartbeat), 0, 1, 2, 3, 0, 0, 7, 0, 0}
	if got := appendMessage(nil, &hb); !bytes.Equal(got, want) {
		t.Fatalf("heartbeat encodes as %v, want %v", got, want)
	}
	app := raft.Message{Type: raft.MsgApp, From: 1, To: 2, Term: 3, LogTerm: 3, Index: 100, Commit: 99,
		Entries: []raft.Entry{{Term: 3, Index: 101, Type: raft.EntryNormal, Data: make([]byte, 256)}}}
	enc := appendMessage(nil, &app)
	if len(enc) != 271 || !bytes.Equal(enc[10:15], []byte{3, 101, byte(raft.EntryNormal), 0x80, 0x02}) {
		t.Fatalf("MsgApp encodes in %d bytes, entry header %v; want 271 and [3 101 1 128 2]", len(enc), enc[10:15])
	}
	snap := raft.Message{Type: raft.MsgSnap, From: 1, To: 2, Reject: true, Snapshot: &raft.Snapshot{
		Meta: raft.SnapshotMeta{Index: 5, Term: 2, ConfState: raft.ConfState{Voters: []uint64{1, 2}}}, Data: []byte("ab")}}
	want = []byte{byte(raft.MsgSnap), flagReject | flagSnapshot, 1, 2, 0, 0, 0, 0, 0, 0, 5, 2, 2, 1, 2, 2, 'a', 'b'}
	if got := appendMessage(nil, &snap); !bytes.Equal(got, want) {
		t.Fatalf("snapshot encodes as %v, want %v", got, want)
	}
}
