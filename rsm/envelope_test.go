package rsm

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, e := range []Envelope{
		{Cmd: []byte{}},
		{ClientID: 1, Seq: 1, Now: 1, Cmd: []byte("put k v")},
		{ClientID: math.MaxUint64, Seq: math.MaxUint64, Now: math.MinInt64, Cmd: bytes.Repeat([]byte{0xff}, 300)},
		{ClientID: 7, Seq: 3, Now: -5, Cmd: make([]byte, MaxCmdBytes)},
	} {
		b := EncodeEnvelope(e)
		got, err := DecodeEnvelope(b)
		if err != nil {
			t.Fatalf("DecodeEnvelope(EncodeEnvelope(%d-byte cmd)): %v", len(e.Cmd), err)
		}
		if got.ClientID != e.ClientID || got.Seq != e.Seq || got.Now != e.Now || !bytes.Equal(got.Cmd, e.Cmd) {
			t.Errorf("round trip: got {%d %d %d %d-byte cmd}, want {%d %d %d %d-byte cmd}",
				got.ClientID, got.Seq, got.Now, len(got.Cmd), e.ClientID, e.Seq, e.Now, len(e.Cmd))
		}
		if !bytes.Equal(EncodeEnvelope(got), b) {
			t.Errorf("re-encoding differs")
		}
	}
}

func TestDecodeEnvelopeErrors(t *testing.T) {
	good := EncodeEnvelope(Envelope{ClientID: 1, Seq: 2, Now: 3, Cmd: []byte("abc")})
	bigLen := append([]byte(nil), good...)
	bigLen[25], bigLen[26], bigLen[27], bigLen[28] = 0xff, 0xff, 0xff, 0x7f
	badFormat := append([]byte{2}, good[1:]...)
	for name, b := range map[string][]byte{
		"nil":        nil,
		"short":      good[:envHeader-1],
		"truncated":  good[:len(good)-1],
		"trailing":   append(append([]byte(nil), good...), 0),
		"format":     badFormat,
		"oversize":   bigLen,
		"too large":  EncodeEnvelope(Envelope{Cmd: make([]byte, MaxCmdBytes+1)}),
		"empty data": {},
	} {
		if _, err := DecodeEnvelope(b); !errors.Is(err, ErrMalformedEnvelope) {
			t.Errorf("%s: DecodeEnvelope error = %v, want ErrMalformedEnvelope", name, err)
		}
	}
}

func TestDecodeResult(t *testing.T) {
	p, err := DecodeResult(okResult([]byte("payload")))
	if err != nil || string(p) != "payload" {
		t.Errorf("ok result: got %q, %v", p, err)
	}
	if p, err := DecodeResult(okResult(nil)); err != nil || len(p) != 0 {
		t.Errorf("empty ok result: got %q, %v", p, err)
	}
	stale := errResult(statusStale, ErrStaleSequence)
	if _, err := DecodeResult(stale); !errors.Is(err, ErrStaleSequence) || err.Error() != ErrStaleSequence.Error() {
		t.Errorf("stale result: err = %v", err)
	}
	long := errResult(statusMalformed, errors.New(string(bytes.Repeat([]byte("é"), maxErrBytes))))
	if len(long) > 1+maxErrBytes {
		t.Errorf("error result is %d bytes, want at most %d", len(long), 1+maxErrBytes)
	}
	if _, err := DecodeResult(long); !errors.Is(err, ErrMalformedEnvelope) {
		t.Errorf("malformed result: err = %v", err)
	}
	for _, b := range [][]byte{nil, {0}, {9, 'x'}} {
		if _, err := DecodeResult(b); !errors.Is(err, ErrMalformedResult) {
			t.Errorf("DecodeResult(%q) err = %v, want ErrMalformedResult", b, err)
		}
	}
}
