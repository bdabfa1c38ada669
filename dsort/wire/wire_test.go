package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"go.uber.org/goleak"
)

func TestRoundTrip(t *testing.T) {
	h := Hello{From: 3, To: 7, Nodes: 16, ConfigHash: [HashSize]byte{1, 2, 3}}
	e := End{Records: 12345, Hash: 0xdeadbeef}
	var buf bytes.Buffer
	frames := []struct {
		t Type
		p []byte
	}{
		{TypeHello, AppendHello(nil, h)},
		{TypeAccept, AppendHello(nil, h)},
		{TypeSample, make([]byte, 10*KeySize)},
		{TypeData, bytes.Repeat([]byte{7}, 3*RecordSize)},
		{TypeData, make([]byte, MaxDataBytes)},
		{TypeData, nil},
		{TypeEnd, AppendEnd(nil, e)},
		{TypeError, []byte("boom")},
	}
	for _, f := range frames {
		if err := WriteFrame(&buf, f.t, f.p); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(&buf)
	for i, f := range frames {
		typ, p, err := r.Next()
		if err != nil || typ != f.t || !bytes.Equal(p, f.p) {
			t.Fatalf("frame %d: got %v %d bytes %v, want %v %d bytes", i, typ, len(p), err, f.t, len(f.p))
		}
	}
	if _, _, err := r.Next(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
	if got, err := ParseHello(AppendHello(nil, h)); err != nil || got != h {
		t.Errorf("ParseHello: %+v %v", got, err)
	}
	if got, err := ParseEnd(AppendEnd(nil, e)); err != nil || got != e {
		t.Errorf("ParseEnd: %+v %v", got, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	var data bytes.Buffer
	WriteFrame(&data, TypeData, make([]byte, 5*RecordSize))
	whole := data.Bytes()
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"cut in header", whole[:3], ErrTruncated},
		{"cut in payload", whole[:HeaderSize+250], ErrTruncated},
		{"data too large", AppendHeader(nil, TypeData, MaxDataBytes+RecordSize), ErrTooLarge},
		{"data 4 GiB", AppendHeader(nil, TypeData, 1<<32-1), ErrTooLarge},
		{"partial record", AppendHeader(nil, TypeData, 150), ErrMalformed},
		{"hello wrong size", AppendHeader(nil, TypeHello, 10), ErrMalformed},
		{"end empty", AppendHeader(nil, TypeEnd, 0), ErrMalformed},
		{"error too long", AppendHeader(nil, TypeError, MaxError+1), ErrTooLarge},
		{"sample partial key", AppendHeader(nil, TypeSample, 15), ErrMalformed},
		{"unknown type", AppendHeader(nil, 99, 0), ErrMalformed},
		{"type zero", AppendHeader(nil, 0, 0), ErrMalformed},
	} {
		_, _, err := NewReader(bytes.NewReader(tc.in)).Next()
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	bad := AppendHello(nil, Hello{})
	copy(bad, "HTTP")
	if _, err := ParseHello(bad); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad magic: %v", err)
	}
	bad = AppendHello(nil, Hello{})
	bad[5] = 9
	if _, err := ParseHello(bad); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad version: %v", err)
	}
	if err := WriteFrame(io.Discard, TypeData, make([]byte, MaxPayload+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize write: %v", err)
	}
}

// FuzzReader feeds arbitrary bytes to the decoder: it must never panic,
// never return a payload over its type's bound, and never allocate more
// than MaxPayload for a frame.
func FuzzReader(f *testing.F) {
	var b bytes.Buffer
	WriteFrame(&b, TypeHello, AppendHello(nil, Hello{Nodes: 2}))
	WriteFrame(&b, TypeData, make([]byte, RecordSize))
	WriteFrame(&b, TypeEnd, AppendEnd(nil, End{Records: 1}))
	f.Add(b.Bytes())
	f.Add(AppendHeader(nil, TypeData, 1<<31))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in))
		for {
			typ, p, err := r.Next()
			if err != nil {
				return
			}
			if cap(r.buf) > MaxPayload || len(p) > MaxPayload {
				t.Fatalf("%v frame of %d bytes (buffer %d)", typ, len(p), cap(r.buf))
			}
			switch typ {
			case TypeData:
				if len(p)%RecordSize != 0 {
					t.Fatalf("data of %d bytes", len(p))
				}
			case TypeHello, TypeAccept:
				ParseHello(p)
			case TypeEnd:
				if _, err := ParseEnd(p); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
