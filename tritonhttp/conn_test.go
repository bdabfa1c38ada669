package tritonhttp

import (
	"bufio"
	"strings"
	"testing"
	"time"
)

var siteFiles = map[string]string{
	"index.html":     "<h1>home</h1>",
	"a.txt":          "A",
	"b.txt":          "BB",
	"dir/index.html": "dir home",
	"empty/":         "",
}

func TestPipelinedRequestsAnsweredInOrder(t *testing.T) {
	s := testServer(t, testRoot(t, siteFiles), Limits{})
	cli, _ := pipeConn(t, s)
	wire := "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n" +
		"HEAD /b.txt HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody" +
		"GET /dir/ HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	sent := send(cli, wire)
	br := bufio.NewReader(cli)
	want := []struct {
		method string
		status int
		body   string
	}{
		{"GET", 200, "A"}, {"GET", 404, "404 Not Found\n"}, {"HEAD", 200, ""},
		{"POST", 405, "405 Method Not Allowed\n"}, {"GET", 200, "dir home"}, {"GET", 200, "<h1>home</h1>"},
	}
	for i, w := range want {
		resp, body := readResponse(t, br, w.method)
		if resp.StatusCode != w.status || body != w.body {
			t.Errorf("response %d: %d %q, want %d %q", i, resp.StatusCode, body, w.status, w.body)
		}
		if resp.Header.Get("Date") == "" {
			t.Errorf("response %d has no Date", i)
		}
		if w.method == "HEAD" && resp.ContentLength != 2 {
			t.Errorf("HEAD Content-Length %d, want 2", resp.ContentLength)
		}
		if w.status == 405 && resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("405 Allow = %q", resp.Header.Get("Allow"))
		}
		if last := i == len(want)-1; resp.Close != last {
			t.Errorf("response %d: Connection close = %v, want %v", i, resp.Close, last)
		}
	}
	expectEOF(t, br)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}

func TestHeadersOn200(t *testing.T) {
	s := testServer(t, testRoot(t, siteFiles), Limits{})
	cli, _ := pipeConn(t, s)
	send(cli, "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, _ := readResponse(t, bufio.NewReader(cli), "GET")
	for name, want := range map[string]string{"Content-Type": "text/html; charset=utf-8", "Content-Length": "13"} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	for _, name := range []string{"Date", "Last-Modified"} {
		if _, err := time.Parse(httpDate, resp.Header.Get(name)); err != nil {
			t.Errorf("%s = %q: %v", name, resp.Header.Get(name), err)
		}
	}
}

func TestBadRequestClosesConnection(t *testing.T) {
	s := testServer(t, testRoot(t, siteFiles), Limits{})
	for _, wire := range []string{
		"GARBAGE\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",                // no Host
		"GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", // bad escape
		"\x00\xff\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",           // binary (a TLS hello)
	} {
		cli, _ := pipeConn(t, s)
		send(cli, wire)
		br := bufio.NewReader(cli)
		resp, _ := readResponse(t, br, "GET")
		if resp.StatusCode != 400 || !resp.Close {
			t.Errorf("%q: %d close=%v, want 400 with Connection: close", wire, resp.StatusCode, resp.Close)
		}
		expectEOF(t, br)
	}
}

func TestLimitStatuses(t *testing.T) {
	s := testServer(t, testRoot(t, siteFiles), Limits{MaxRequestLine: 64, MaxHeaderBytes: 64, MaxHeaders: 2})
	for wire, want := range map[string]int{
		"GET /" + strings.Repeat("a", 80) + " HTTP/1.1\r\nHost: x\r\n\r\n":         414,
		"GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", 80) + "\r\n\r\n":  431,
		"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n":                        431,
		"GET / HTTP/3.0\r\nHost: x\r\n\r\n":                                        505,
		"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n": 501,
	} {
		cli, _ := pipeConn(t, s)
		send(cli, wire)
		br := bufio.NewReader(cli)
		resp, _ := readResponse(t, br, "GET")
		if resp.StatusCode != want || !resp.Close {
			t.Errorf("%.40q: %d close=%v, want %d with Connection: close", wire, resp.StatusCode, resp.Close, want)
		}
		expectEOF(t, br)
	}
}

func TestIdleTimeoutClosesSilently(t *testing.T) {
	s := testServer(t, testRoot(t, siteFiles), Limits{IdleTimeout: 50 * time.Millisecond})
	cli, done := pipeConn(t, s)
	expectEOF(t, bufio.NewReader(cli))
	waitDone(t, done, 5*time.Second, "closing an idle connection")
}

func TestIdleTimeoutAfterAResponse(t *testing.T) {
	s := testServer(t, testRoot(t, siteFiles), Limits{IdleTimeout: 50 * time.Millisecond})
	cli, _ := pipeConn(t, s)
	send(cli, "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(cli)
	if resp, _ := readResponse(t, br, "GET"); resp.StatusCode != 200 || resp.Close {
		t.Fatalf("status %d close=%v", resp.StatusCode, resp.Close)
	}
	expectEOF(t, br)
}

func TestPartialRequestTimesOutWith400(t *testing.T) {
	s := testServer(t, testRoot(t, siteFiles), Limits{IdleTimeout: 50 * time.Millisecond, HeaderTimeout: 50 * time.Millisecond})
	cli, _ := pipeConn(t, s)
	send(cli, "GET /a.txt HTTP/1.1\r\nHost: x\r\n")
	br := bufio.NewReader(cli)
	if resp, _ := readResponse(t, br, "GET"); resp.StatusCode != 400 || !resp.Close {
		t.Fatalf("status %d close=%v, want 400 and close", resp.StatusCode, resp.Close)
	}
	expectEOF(t, br)
}

// A client that sends a byte at a time keeps resetting no timer: the whole
// header must arrive within HeaderTimeout.
func TestSlowlorisIsCut(t *testing.T) {
	s := testServer(t, testRoot(t, siteFiles), Limits{IdleTimeout: 5 * time.Second, HeaderTimeout: 200 * time.Millisecond})
	cli, done := pipeConn(t, s)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		wire := "GET / HTTP/1.1\r\nHost: x\r\n"
		for i := 0; ; i++ {
			b := byte('a' + i%26)
			if i < len(wire) {
				b = wire[i]
			} else if i%8 == 7 {
				b = '\n'
			} else if i%8 == 0 {
				b = 'X'
			} else if i%8 == 1 {
				b = ':'
			}
			if _, err := cli.Write([]byte{b}); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	br := bufio.NewReader(cli)
	if resp, _ := readResponse(t, br, "GET"); resp.StatusCode != 400 || !resp.Close {
		t.Fatalf("status %d close=%v, want 400 and close", resp.StatusCode, resp.Close)
	}
	waitDone(t, done, 5*time.Second, "closing a slowloris connection")
}

// A client that never reads must not hold the connection past WriteTimeout.
func TestClientThatNeverReads(t *testing.T) {
	big := strings.Repeat("x", 3<<20)
	s := testServer(t, testRoot(t, map[string]string{"big.bin": big, "small.txt": "s"}), Limits{WriteTimeout: 100 * time.Millisecond})
	for _, path := range []string{"/big.bin", "/small.txt"} {
		cli, done := pipeConn(t, s)
		send(cli, strings.Repeat("GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n", 20))
		waitDone(t, done, 5*time.Second, "dropping a client that never reads "+path)
	}
}

func TestMaxRequestsPerConn(t *testing.T) {
	s := testServer(t, testRoot(t, siteFiles), Limits{MaxRequestsPerConn: 2})
	cli, _ := pipeConn(t, s)
	send(cli, strings.Repeat("GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n", 3))
	br := bufio.NewReader(cli)
	for i := range 2 {
		resp, _ := readResponse(t, br, "GET")
		if resp.StatusCode != 200 || resp.Close != (i == 1) {
			t.Errorf("response %d: %d close=%v", i, resp.StatusCode, resp.Close)
		}
	}
	expectEOF(t, br)
}

func TestHTTP10(t *testing.T) {
	s := testServer(t, testRoot(t, siteFiles), Limits{})
	cli, _ := pipeConn(t, s)
	send(cli, "GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b.txt HTTP/1.0\r\n\r\n")
	br := bufio.NewReader(cli)
	resp, body := readResponse(t, br, "GET")
	if resp.StatusCode != 200 || body != "A" || resp.Header.Get("Connection") != "keep-alive" {
		t.Errorf("keep-alive 1.0: %d %q Connection=%q", resp.StatusCode, body, resp.Header.Get("Connection"))
	}
	resp, body = readResponse(t, br, "GET")
	if resp.StatusCode != 200 || body != "BB" || !resp.Close {
		t.Errorf("plain 1.0: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	expectEOF(t, br)
}

func TestGarbageNeverPanics(t *testing.T) {
	s := testServer(t, testRoot(t, siteFiles), Limits{IdleTimeout: 50 * time.Millisecond, HeaderTimeout: 50 * time.Millisecond})
	seed := uint32(1)
	for range 50 {
		b := make([]byte, 300)
		for i := range b {
			seed = seed*1664525 + 1013904223
			b[i] = byte(seed >> 24)
			if b[i]%17 == 0 {
				b[i] = '\n'
			}
		}
		cli, done := pipeConn(t, s)
		send(cli, string(b))
		go func() {
			buf := make([]byte, 4096)
			for {
				if _, err := cli.Read(buf); err != nil {
					return
				}
			}
		}()
		waitDone(t, done, 5*time.Second, "closing a garbage connection")
	}
}
