package tritonhttp

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// parsed is what a test compares of a request.
type parsed struct {
	Method, Path, Query string
	Proto               int
	Host                string
	Close, KeepAlive    bool
	Fields              []string // "Name: value", canonical names
	Status              int      // 0 when accepted; else the refusal's status
}

func parse(t *testing.T, wire string, lim Limits) (parsed, *request) {
	t.Helper()
	lim = lim.withDefaults()
	var r request
	br := bufio.NewReaderSize(strings.NewReader(wire), 4096)
	err := r.read(br, &lim)
	var p parsed
	if err != nil {
		var se *statusError
		switch {
		case errors.As(err, &se):
			p.Status = se.status
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			p.Status = -1 // ran out of input
		default:
			t.Fatalf("read %q: unexpected error %v", wire, err)
		}
		return p, &r
	}
	p.Method = string(r.bytes(r.methodB))
	p.Path = string(r.bytes(r.path))
	p.Query = string(r.bytes(r.query))
	p.Proto = r.proto
	p.Host = string(r.bytes(r.hostName))
	p.Close, p.KeepAlive = r.close, r.keepAlive
	for _, f := range r.fields {
		p.Fields = append(p.Fields, string(r.bytes(f.name))+": "+string(r.bytes(f.value)))
	}
	return p, &r
}

func TestParseRequest(t *testing.T) {
	long := strings.Repeat("a", 9000)
	tests := []struct {
		name string
		wire string
		want parsed
	}{
		{"minimal", "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			parsed{Method: "GET", Path: "/", Proto: 11, Host: "a", Fields: []string{"Host: a"}}},
		{"canonical names, spaces ignored", "GET /x HTTP/1.1\r\nhost:   Web.Site:8080 \r\ncontent-LENGTH: 0\r\nx-my-header:\tv  v\r\n\r\n",
			parsed{Method: "GET", Path: "/x", Proto: 11, Host: "web.site", Fields: []string{"Host: web.site:8080", "Content-Length: 0", "X-My-Header: v  v"}}},
		{"query split off", "GET /a/b.html?x=1&y=2 HTTP/1.1\r\nHost: a\r\n\r\n",
			parsed{Method: "GET", Path: "/a/b.html", Query: "x=1&y=2", Proto: 11, Host: "a", Fields: []string{"Host: a"}}},
		{"bare LF line ends", "GET / HTTP/1.1\nHost: a\n\n",
			parsed{Method: "GET", Path: "/", Proto: 11, Host: "a", Fields: []string{"Host: a"}}},
		{"leading empty lines", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
			parsed{Method: "GET", Path: "/", Proto: 11, Host: "a", Fields: []string{"Host: a"}}},
		{"connection close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n",
			parsed{Method: "GET", Path: "/", Proto: 11, Host: "a", Close: true, KeepAlive: true, Fields: []string{"Host: a", "Connection: Keep-Alive, CLOSE"}}},
		{"HTTP/1.0 without Host", "HEAD /i HTTP/1.0\r\n\r\n",
			parsed{Method: "HEAD", Path: "/i", Proto: 10}},
		{"IPv6 host with port", "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
			parsed{Method: "GET", Path: "/", Proto: 11, Host: "[::1]", Fields: []string{"Host: [::1]:80"}}},
		{"absolute form", "GET http://Other.Site:81/p?q HTTP/1.1\r\nHost: a\r\n\r\n",
			parsed{Method: "GET", Path: "/p", Query: "q", Proto: 11, Host: "other.site", Fields: []string{"Host: a"}}},
		{"absolute form without path", "GET http://b HTTP/1.1\r\nHost: a\r\n\r\n",
			parsed{Method: "GET", Path: "/", Proto: 11, Host: "b", Fields: []string{"Host: a"}}},
		{"other method parsed", "DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n",
			parsed{Method: "DELETE", Path: "/x", Proto: 11, Host: "a", Fields: []string{"Host: a"}}},
		{"body discarded", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
			parsed{Method: "GET", Path: "/", Proto: 11, Host: "a", Fields: []string{"Host: a", "Content-Length: 3"}}},

		{"no Host", "GET / HTTP/1.1\r\n\r\n", parsed{Status: 400}},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", parsed{Status: 400}},
		{"bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", parsed{Status: 400}},
		{"bad Host port", "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", parsed{Status: 400}},
		{"relative URL", "GET index.html HTTP/1.1\r\nHost: a\r\n\r\n", parsed{Status: 400}},
		{"asterisk with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", parsed{Status: 400}},
		{"missing version", "GET /\r\nHost: a\r\n\r\n", parsed{Status: 400}},
		{"two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", parsed{Status: 400}},
		{"trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", parsed{Status: 400}},
		{"lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", parsed{Status: 400}},
		{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", parsed{Status: 505}},
		{"method not a token", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", parsed{Status: 400}},
		{"control char in target", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", parsed{Status: 400}},
		{"bare CR", "GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", parsed{Status: 400}},
		{"no colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", parsed{Status: 400}},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", parsed{Status: 400}},
		{"empty name", "GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n", parsed{Status: 400}},
		{"underscore in name", "GET / HTTP/1.1\r\nX_Y: a\r\nHost: a\r\n\r\n", parsed{Status: 400}},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", parsed{Status: 400}},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", parsed{Status: 400}},
		{"bad Content-Length", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", parsed{Status: 400}},
		{"conflicting Content-Length", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", parsed{Status: 400}},
		{"Transfer-Encoding", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", parsed{Status: 501}},
		{"Transfer-Encoding and Content-Length", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", parsed{Status: 400}},
		{"body too large", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n", parsed{Status: 413}},
		{"too many empty lines", "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", parsed{Status: 400}},
		{"request line too long", "GET /" + long + " HTTP/1.1\r\nHost: a\r\n\r\n", parsed{Status: 414}},
		{"header too large", "GET / HTTP/1.1\r\nHost: a\r\nX: " + long + long + "\r\n\r\n", parsed{Status: 431}},
		{"truncated", "GET / HTTP/1.1\r\nHost: a\r\n", parsed{Status: -1}},
		{"truncated body", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab", parsed{Status: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := parse(t, tt.wire, Limits{})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parse %q (-want +got):\n%s", tt.wire, diff)
			}
		})
	}
}

func TestParseLimits(t *testing.T) {
	many := "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-A: b\r\n", 5) + "\r\n"
	if got, _ := parse(t, many, Limits{MaxHeaders: 5}); got.Status != 431 {
		t.Errorf("6 fields with MaxHeaders 5: status %d, want 431", got.Status)
	}
	if got, _ := parse(t, many, Limits{MaxHeaders: 6}); got.Status != 0 {
		t.Errorf("6 fields with MaxHeaders 6: status %d, want accepted", got.Status)
	}
	line := "GET /" + strings.Repeat("a", 100) + " HTTP/1.1\r\n" // 116 bytes
	if got, _ := parse(t, line+"Host: a\r\n\r\n", Limits{MaxRequestLine: 115}); got.Status != 414 {
		t.Errorf("116-byte line with limit 115: status %d, want 414", got.Status)
	}
	if got, _ := parse(t, line+"Host: a\r\n\r\n", Limits{MaxRequestLine: 116}); got.Status != 0 {
		t.Errorf("116-byte line with limit 116: status %d, want accepted", got.Status)
	}
	// "Host: a\r\n" (9) + "\r\n" (2) = 11 header bytes.
	if got, _ := parse(t, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", Limits{MaxHeaderBytes: 10}); got.Status != 431 {
		t.Errorf("11 header bytes with limit 10: status %d, want 431", got.Status)
	}
	if got, _ := parse(t, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", Limits{MaxHeaderBytes: 11}); got.Status != 0 {
		t.Errorf("11 header bytes with limit 11: status %d, want accepted", got.Status)
	}
	// An over-long line is refused before it is kept.
	_, r := parse(t, "GET / HTTP/1.1\r\nHost: a\r\nX: "+strings.Repeat("b", 1<<20)+"\r\n\r\n", Limits{})
	if len(r.arena) > 64<<10 {
		t.Errorf("arena grew to %d bytes on a 1 MiB header line", len(r.arena))
	}
}

func TestParseNoAllocs(t *testing.T) {
	wire := "GET /index.html HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n"
	lim := DefaultLimits
	var r request
	sr := strings.NewReader(wire)
	br := bufio.NewReaderSize(sr, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		sr.Reset(wire)
		br.Reset(sr)
		if err := r.read(br, &lim); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("parsing a warm request allocates %.1f times, want 0", allocs)
	}
}

func TestCanonicalize(t *testing.T) {
	for in, want := range map[string]string{
		"host": "Host", "CONTENT-LENGTH": "Content-Length", "x-a-b": "X-A-B", "if-modified-since": "If-Modified-Since", "a--b": "A--B", "9x": "9x",
	} {
		b := []byte(in)
		canonicalize(b)
		if string(b) != want {
			t.Errorf("canonicalize(%q) = %q, want %q", in, b, want)
		}
	}
}
