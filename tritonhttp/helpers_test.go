package tritonhttp

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testRoot writes files (path → content; a path ending in "/" is a
// directory) under a fresh directory and returns it.
func testRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// testServer returns a server for root as the catch-all host, with lim.
func testServer(t *testing.T, root string, lim Limits) *Server {
	t.Helper()
	s, err := NewServer(Config{Hosts: VirtualHosts{Hosts: []Host{{Name: CatchAll, Root: root}}}, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// pipeConn runs the connection loop on the server end of a net.Pipe and
// returns the client end and a channel closed when the loop has ended.
func pipeConn(t *testing.T, s *Server) (net.Conn, <-chan struct{}) {
	t.Helper()
	cli, srv := net.Pipe()
	s.open.Add(1)
	c := s.newConn(srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.serve()
		s.release(c)
	}()
	t.Cleanup(func() {
		cli.Close()
		<-done
	})
	cli.SetDeadline(time.Now().Add(10 * time.Second)) // a hung test fails instead of blocking
	return cli, done
}

// send writes wire from its own goroutine (net.Pipe is unbuffered) and
// returns a channel carrying the write's error.
func send(cli net.Conn, wire string) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := io.WriteString(cli, wire)
		ch <- err
	}()
	return ch
}

// readResponse reads one response; method is the request's method.
func readResponse(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading a response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading a response body: %v", err)
	}
	resp.Body.Close()
	return resp, string(body)
}

// waitDone fails the test if ch is not closed within d.
func waitDone(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ch:
	case <-timer.C:
		t.Fatalf("%s did not happen within %v", what, d)
	}
}

// expectEOF fails unless the server has closed its end with nothing more
// to read.
func expectEOF(t *testing.T, br *bufio.Reader) {
	t.Helper()
	rest, err := io.ReadAll(br)
	if err != nil || len(rest) != 0 {
		t.Fatalf("after the last response: %q, %v; want a clean close", rest, err)
	}
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

func newBufReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, readBufferSize) }

func writeBytes(path string, n int) error {
	return os.WriteFile(path, []byte(strings.Repeat("x", n)), 0o644)
}
