package rsm

import (
	"bytes"
	"errors"
	"testing"
)

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(EncodeEnvelope(Envelope{ClientID: 1, Seq: 2, Now: 3, Cmd: []byte("cmd")}))
	f.Add(EncodeEnvelope(Envelope{}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEnvelope(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedEnvelope) {
				t.Fatalf("error %v does not wrap ErrMalformedEnvelope", err)
			}
			return
		}
		if len(e.Cmd) > MaxCmdBytes {
			t.Fatalf("decoded a %d-byte Cmd", len(e.Cmd))
		}
		if !bytes.Equal(EncodeEnvelope(e), b) {
			t.Fatalf("encoding is not canonical: %x re-encodes to %x", b, EncodeEnvelope(e))
		}
	})
}

// FuzzRestore restores arbitrary bytes: a failure must leave the Machine
// unchanged; a success must leave a Machine whose Snapshot is the input
// (the format is canonical) and which still applies commands. Each input
// is also tried with its checksum recomputed, so that the fuzzer reaches
// the field checks behind the CRC.
func FuzzRestore(f *testing.F) {
	_, img := sampleImage(f)
	f.Add(img)
	empty, _ := New(&rawApp{}, Options{}).Snapshot()
	f.Add(empty)
	f.Add([]byte("FRSM"))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkRestore(t, b)
		if len(b) >= 4 {
			checkRestore(t, reseal(bytes.Clone(b)))
		}
	})
}

// checkRestore restores b into a Machine holding one session.
func checkRestore(t *testing.T, b []byte) {
	app := &rawApp{}
	m := New(app, Options{MaxSessions: 3})
	d := &driver{t: t, m: m}
	d.send(4, 1, 50, "seed")
	before := mustSnapshot(t, m)
	if err := m.Restore(b); err != nil {
		if after := mustSnapshot(t, m); !bytes.Equal(before, after) {
			t.Fatalf("failed Restore (%v) changed the Machine", err)
		}
		return
	}
	if after := mustSnapshot(t, m); !bytes.Equal(after, b) {
		t.Fatalf("restored Machine snapshots to %x, want the input %x", after, b)
	}
	d.index = 1 << 62
	for c := uint64(1); c <= 5; c++ {
		if _, err := DecodeResult(d.send(c, c, int64(c)<<40, "x")); err != nil && !errors.Is(err, ErrStaleSequence) {
			t.Fatalf("Apply after Restore: %v", err)
		}
	}
	if n := m.Sessions(); n > 3 {
		t.Fatalf("%d sessions after opening new ones, want at most MaxSessions 3", n)
	}
}
