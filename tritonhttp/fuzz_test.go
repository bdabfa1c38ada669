package tritonhttp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseRequest feeds arbitrary bytes to the parser, reading requests
// until it stops, and checks that it never panics, that the arena stays
// within the limits, and that what it accepts is well formed.
func FuzzParseRequest(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a/b.html?q=1 HTTP/1.1\r\nHost: Web.Site:8080\r\nConnection: close\r\n\r\n",
		"HEAD /x HTTP/1.0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET http://h:1/p HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: [::1]:80\r\nRange: bytes=0-1\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n",
		"\r\n\nGET /%2e%2e/x HTTP/1.1\nHost: a\n\n",
		"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/9.9\r\n\r\n",
		"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: a\r\n\r\n",
		"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
	} {
		f.Add([]byte(seed))
	}
	lim := Limits{MaxRequestLine: 256, MaxHeaderBytes: 512, MaxHeaders: 8, MaxBodyBytes: 64}.withDefaults()
	maxArena := (maxLeadingEmptyLines+1)*lim.MaxRequestLine + lim.MaxHeaderBytes + 1
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(data), 64)
		var r request
		var clean []byte
		for range 64 {
			err := r.read(br, &lim)
			if len(r.arena) > maxArena || len(r.fields) > lim.MaxHeaders {
				t.Fatalf("arena %d bytes (max %d), %d fields", len(r.arena), maxArena, len(r.fields))
			}
			if err != nil {
				var se *statusError
				if errors.As(err, &se) && (se.status < 400 || se.status > 505) {
					t.Fatalf("refusal with status %d", se.status)
				}
				return
			}
			if r.proto != 10 && r.proto != 11 || r.proto == 11 && r.hosts == 0 {
				t.Fatalf("accepted proto %d with %d Host fields", r.proto, r.hosts)
			}
			p := r.bytes(r.path)
			if len(p) == 0 || p[0] != '/' && string(p) != "*" {
				t.Fatalf("accepted path %q", p)
			}
			var st int
			clean, st = cleanPath(clean[:0], p)
			if st == pathOK && (clean[0] != '/' || bytes.Contains(clean, []byte("/../")) || bytes.HasSuffix(clean, []byte("/..")) ||
				bytes.Contains(clean, []byte("//")) || bytes.IndexByte(clean, 0) >= 0) {
				t.Fatalf("cleanPath(%q) = %q", p, clean)
			}
		}
	})
}

// FuzzServeConn runs the whole connection loop (parser, router, path
// cleaning, ranges, conditionals, response writer) on arbitrary input and
// checks that it never panics and never answers outside the site.
func FuzzServeConn(f *testing.F) {
	for _, seed := range []string{
		"GET /a.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=1-\r\n\r\n",
		"GET /d HTTP/1.1\r\nHost: x\r\n\r\nHEAD /d/ HTTP/1.0\r\n\r\n",
		"GET /a.txt HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\nIf-Range: x\r\nRange: bytes=-1\r\n\r\n",
		"GET /%2e%2e/secret HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nabGET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	outside := f.TempDir()
	root := f.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("SECRET"), 0o644); err != nil {
		f.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "d"), 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "a.txt"), []byte("0123456789"), 0o644); err != nil {
		f.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "link")); err != nil {
		f.Fatal(err)
	}
	s, err := NewServer(Config{Hosts: VirtualHosts{Hosts: []Host{{Name: CatchAll, Root: root}}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fc := &recordConn{in: data}
		s.open.Add(1)
		c := s.newConn(fc)
		c.serve()
		s.release(c)
		if bytes.Contains(fc.out.Bytes(), []byte("SECRET")) {
			t.Fatalf("served a file outside the root for %q", data)
		}
	})
}

// recordConn delivers in, then EOF, and records what is written.
type recordConn struct {
	loopConn
	in  []byte
	out bytes.Buffer
}

func (c *recordConn) Read(p []byte) (int, error) {
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	return n, nil
}

func (c *recordConn) Write(p []byte) (int, error) { return c.out.Write(p) }
