package tritonhttp

import (
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// loopConn is a fake connection that delivers the same request n times,
// one per Read (as a keep-alive client waiting for each answer does), and
// discards what is written.
type loopConn struct {
	req     []byte
	left    int
	pos     int
	written int64
}

func (c *loopConn) Read(p []byte) (int, error) {
	if c.pos == len(c.req) {
		if c.left == 0 {
			return 0, io.EOF
		}
		c.left--
		c.pos = 0
	}
	n := copy(p, c.req[c.pos:])
	c.pos += n
	return n, nil
}

func (c *loopConn) Write(p []byte) (int, error)      { c.written += int64(len(p)); return len(p), nil }
func (c *loopConn) Close() error                     { return nil }
func (c *loopConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *loopConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *loopConn) SetDeadline(time.Time) error      { return nil }
func (c *loopConn) SetReadDeadline(time.Time) error  { return nil }
func (c *loopConn) SetWriteDeadline(time.Time) error { return nil }

const wrkRequest = "GET /f.bin HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"

// serveLoop answers n requests on one fake connection and returns the bytes
// written.
func serveLoop(s *Server, n int) int64 {
	lc := &loopConn{req: []byte(wrkRequest), left: n}
	s.open.Add(1)
	c := s.newConn(lc)
	c.serve()
	s.release(c)
	return lc.written
}

func TestCachedResponsesDoNotAllocate(t *testing.T) {
	s := testServer(t, testRoot(t, map[string]string{"f.bin": strings.Repeat("x", 1024)}), Limits{MaxRequestsPerConn: 1 << 30})
	serveLoop(s, 10) // warm the cache and the pools
	const n = 2000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	serveLoop(s, n)
	runtime.ReadMemStats(&after)
	if per := float64(after.Mallocs-before.Mallocs) / n; per > 0.05 {
		t.Errorf("%.2f allocations per cached keep-alive request, want ~0", per)
	}
}

func benchmarkServe(b *testing.B, size int) {
	s, err := NewServer(Config{Hosts: VirtualHosts{Hosts: []Host{{Name: CatchAll, Root: benchRoot(b, size)}}}, Limits: Limits{MaxRequestsPerConn: 1 << 30}})
	if err != nil {
		b.Fatal(err)
	}
	serveLoop(s, 10)
	b.ReportAllocs()
	b.ResetTimer()
	w := serveLoop(s, b.N)
	b.SetBytes(w / int64(b.N+1))
}

func benchRoot(b *testing.B, size int) string {
	root := b.TempDir()
	if err := writeBytes(root+"/f.bin", size); err != nil {
		b.Fatal(err)
	}
	return root
}

func BenchmarkServeCached32(b *testing.B)  { benchmarkServe(b, 32) }
func BenchmarkServeCached16K(b *testing.B) { benchmarkServe(b, 16<<10) }
func BenchmarkServeFile1M(b *testing.B)    { benchmarkServe(b, 1<<20) }

func BenchmarkParseRequest(b *testing.B) {
	wire := "GET /index.html HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\nAccept-Encoding: gzip\r\nConnection: keep-alive\r\n\r\n"
	lim := DefaultLimits
	var r request
	sr := strings.NewReader(wire)
	br := newBufReader(sr)
	b.ReportAllocs()
	for b.Loop() {
		sr.Reset(wire)
		br.Reset(sr)
		if err := r.read(br, &lim); err != nil {
			b.Fatal(err)
		}
	}
}
