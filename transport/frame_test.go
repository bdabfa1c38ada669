package transport

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestFrameReader(t *testing.T) {
	var wire []byte
	wire = appendFrameHeader(wire, frameMsg, 3)
	wire = append(wire, "abc"...)
	wire = appendFrameHeader(wire, frameSnapChunk, 0)
	fr := frameReader{r: bytes.NewReader(wire), max: 16}
	typ, n, err := fr.next()
	if err != nil || typ != frameMsg || n != 3 {
		t.Fatalf("first frame: type %d, %d bytes, %v; want message, 3 bytes", typ, n, err)
	}
	if p, err := fr.payload(n); err != nil || string(p) != "abc" {
		t.Fatalf("first payload: %q, %v", p, err)
	}
	if typ, n, err = fr.next(); err != nil || typ != frameSnapChunk || n != 0 {
		t.Fatalf("second frame: type %d, %d bytes, %v; want an empty chunk", typ, n, err)
	}
	if _, _, err = fr.next(); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
}

func TestFrameReaderTruncated(t *testing.T) {
	wire := append(appendFrameHeader(nil, frameMsg, 10), "abc"...)
	for cut := 1; cut < len(wire); cut++ {
		fr := frameReader{r: bytes.NewReader(wire[:cut]), max: 16}
		typ, n, err := fr.next()
		if err == nil {
			_, err = fr.payload(n)
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("frame cut at byte %d (type %d): err = %v, want io.ErrUnexpectedEOF", cut, typ, err)
		}
	}
}

// TestFrameReaderRejectsOversizeBeforeAllocating feeds a 4 GiB length
// prefix: the reader must refuse it from the header alone.
func TestFrameReaderRejectsOversizeBeforeAllocating(t *testing.T) {
	wire := []byte{0xff, 0xff, 0xff, 0xff, frameMsg}
	var err error
	alloc := bytesAllocated(func() {
		fr := frameReader{r: bytes.NewReader(wire), max: DefaultMaxFrameBytes}
		_, _, err = fr.next()
	})
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("err = %v, want ErrFrameTooLarge", err)
	}
	if alloc > 64<<10 {
		t.Fatalf("rejecting the frame allocated %d bytes", alloc)
	}
	if want := "message frame of 4294967295 bytes, limit 4194304"; !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %q, want it to mention %q", err, want)
	}
}

func TestErrorFrameIsBounded(t *testing.T) {
	long := strings.Repeat("é", maxErrorText) // 2 bytes each
	f := errorFrame(long)
	fr := frameReader{r: bytes.NewReader(f), max: maxErrorText}
	typ, n, err := fr.next()
	if err != nil || typ != frameError {
		t.Fatalf("type %d, err %v", typ, err)
	}
	p, _ := fr.payload(n)
	if len(p) > maxErrorText || !strings.HasPrefix(long, string(p)) || len(p) < maxErrorText-1 {
		t.Fatalf("reason cut to %d bytes, want a valid prefix of at most %d", len(p), maxErrorText)
	}
}

func TestHelloRoundTrip(t *testing.T) {
	h := hello{version: protocolVersion, kind: kindSnapshots, cluster: 1 << 60, from: 3, to: 70000}
	b := h.marshal()
	if len(b) != helloLen || !bytes.HasPrefix(b, []byte("FLTR")) {
		t.Fatalf("hello is %d bytes %q, want %d starting FLTR", len(b), b, helloLen)
	}
	got, err := readHello(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(h, got, cmp.AllowUnexported(hello{})); diff != "" {
		t.Fatalf("hello round trip (-want +got):\n%s", diff)
	}
	b[0] = 'X'
	if _, err := readHello(bytes.NewReader(b)); !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "bad magic") {
		t.Fatalf("bad magic: err = %v", err)
	}
}

func TestAcceptInfoRoundTrip(t *testing.T) {
	a := acceptInfo{version: protocolVersion, node: 9, maxFrame: 1 << 22, maxSnapshot: 1 << 40}
	fr := frameReader{r: bytes.NewReader(a.frame()), max: maxErrorText}
	typ, n, err := fr.next()
	if err != nil || typ != frameAccept {
		t.Fatalf("type %d, err %v", typ, err)
	}
	p, _ := fr.payload(n)
	got, err := parseAccept(p)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, got, cmp.AllowUnexported(acceptInfo{})); diff != "" {
		t.Fatalf("accept round trip (-want +got):\n%s", diff)
	}
	if _, err := parseAccept(p[1:]); !errors.Is(err, ErrHandshake) {
		t.Fatalf("short accept: err = %v", err)
	}
}

func TestRefusal(t *testing.T) {
	ok := hello{version: protocolVersion, kind: kindMessages, cluster: 9, from: 1, to: 2}
	tests := []struct {
		name string
		edit func(*hello)
		want string // "" for accepted
	}{
		{"valid", func(*hello) {}, ""},
		{"snapshot kind", func(h *hello) { h.kind = kindSnapshots }, ""},
		{"version", func(h *hello) { h.version = 2 }, "unsupported protocol version 2: this node speaks version 1"},
		{"kind", func(h *hello) { h.kind = 9 }, "unknown connection kind 9"},
		{"flags", func(h *hello) { h.flags = 1 }, "unknown hello flags"},
		{"cluster", func(h *hello) { h.cluster = 7 }, "cluster ID mismatch: the dialer is in cluster 7, this node is in cluster 9"},
		{"receiver", func(h *hello) { h.to = 3 }, "wrong node: the dialer wants node 3, this is node 2"},
		{"sender zero", func(h *hello) { h.from = 0 }, "invalid sender node ID 0"},
		{"sender self", func(h *hello) { h.from = 2 }, "invalid sender node ID 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := ok
			tt.edit(&h)
			got := refusal(&h, 9, 2)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Fatalf("refusal = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := 100*time.Millisecond, 2*time.Second
	none := func(int64) int64 { return 0 }
	most := func(n int64) int64 { return n - 1 }
	tests := []struct {
		attempt  int
		min, max time.Duration
	}{
		{0, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 200 * time.Millisecond, 400 * time.Millisecond},
		{5, 800 * time.Millisecond, 1600 * time.Millisecond},
		{6, time.Second, 2 * time.Second},
		{64, time.Second, 2 * time.Second},
		{1 << 30, time.Second, 2 * time.Second},
	}
	for _, tt := range tests {
		if got := backoff(tt.attempt, lo, hi, none); got != tt.min {
			t.Errorf("backoff(%d) with no jitter = %v, want %v", tt.attempt, got, tt.min)
		}
		if got := backoff(tt.attempt, lo, hi, most); got != tt.max {
			t.Errorf("backoff(%d) with most jitter = %v, want %v", tt.attempt, got, tt.max)
		}
	}
}
