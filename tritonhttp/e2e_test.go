package tritonhttp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// startServer serves cfg on a free 127.0.0.1 port until the test ends.
func startServer(t *testing.T, cfg Config) string {
	t.Helper()
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// client returns a keep-alive net/http client that does not follow
// redirects, closed when the test ends.
func client(t *testing.T) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestE2ENetHTTPClient(t *testing.T) {
	big := randomBytes(t, 3<<20+17)
	root := testRoot(t, map[string]string{"index.html": "home", "a b.txt": "spaced", "d/index.html": "in d", "style.css": "p{}"})
	writeFile(t, filepath.Join(root, "big.bin"), string(big))
	// A file last modified on a Wednesday: its date starts with "W", like a
	// weak entity-tag.
	writeFile(t, filepath.Join(root, "wed.txt"), "wednesday")
	wed := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(root, "wed.txt"), wed, wed); err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, Config{Hosts: VirtualHosts{Hosts: []Host{{Name: CatchAll, Root: root}}}})
	c := client(t)
	get := func(method, path string, hdr ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s body: %v", method, path, err)
		}
		return resp, body
	}

	if resp, body := get("GET", "/"); resp.StatusCode != 200 || string(body) != "home" {
		t.Errorf("GET /: %d %q", resp.StatusCode, body)
	}
	if resp, body := get("GET", "/a%20b.txt"); resp.StatusCode != 200 || string(body) != "spaced" {
		t.Errorf("GET /a%%20b.txt: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get("GET", "/style.css"); resp.Header.Get("Content-Type") != "text/css; charset=utf-8" {
		t.Errorf("css Content-Type %q", resp.Header.Get("Content-Type"))
	}
	resp, body := get("HEAD", "/index.html")
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != 4 {
		t.Errorf("HEAD: %d len %d body %q", resp.StatusCode, resp.ContentLength, body)
	}
	lm := resp.Header.Get("Last-Modified")
	if resp, body := get("GET", "/index.html", "If-Modified-Since", lm); resp.StatusCode != 304 || len(body) != 0 {
		t.Errorf("If-Modified-Since %s: %d %q", lm, resp.StatusCode, body)
	}
	if resp, _ := get("GET", "/index.html", "If-Modified-Since", "Sat, 01 Jan 2000 00:00:00 GMT"); resp.StatusCode != 200 {
		t.Errorf("If-Modified-Since old: %d", resp.StatusCode)
	}
	if resp, body := get("GET", "/d?x=1"); resp.StatusCode != 301 || resp.Header.Get("Location") != "/d/?x=1" || len(body) != 0 {
		t.Errorf("GET /d: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := get("GET", "/d/"); resp.StatusCode != 200 || string(body) != "in d" {
		t.Errorf("GET /d/: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get("GET", "/nope.html"); resp.StatusCode != 404 {
		t.Errorf("missing: %d", resp.StatusCode)
	}
	if resp, _ := get("DELETE", "/index.html"); resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("DELETE: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	// Large files go by sendfile; whole and in ranges.
	if resp, body := get("GET", "/big.bin"); resp.StatusCode != 200 || !bytes.Equal(body, big) {
		t.Errorf("big: %d, %d bytes, equal=%v", resp.StatusCode, len(body), bytes.Equal(body, big))
	}
	if resp, body := get("GET", "/big.bin", "Range", "bytes=1000000-2000000"); resp.StatusCode != 206 || !bytes.Equal(body, big[1000000:2000001]) ||
		resp.Header.Get("Content-Range") != "bytes 1000000-2000000/3145745" {
		t.Errorf("big range: %d %d bytes %q", resp.StatusCode, len(body), resp.Header.Get("Content-Range"))
	}
	if resp, body := get("GET", "/index.html", "Range", "bytes=-2"); resp.StatusCode != 206 || string(body) != "me" {
		t.Errorf("suffix range: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get("GET", "/index.html", "Range", "bytes=10-"); resp.StatusCode != 416 || resp.Header.Get("Content-Range") != "bytes */4" {
		t.Errorf("unsatisfiable range: %d %q", resp.StatusCode, resp.Header.Get("Content-Range"))
	}
	if resp, body := get("GET", "/index.html", "Range", "bytes=0-1", "If-Range", "Sat, 01 Jan 2000 00:00:00 GMT"); resp.StatusCode != 200 || string(body) != "home" {
		t.Errorf("stale If-Range: %d %q", resp.StatusCode, body)
	}
	if resp, body := get("GET", "/index.html", "Range", "bytes=0-1", "If-Range", lm); resp.StatusCode != 206 || string(body) != "ho" {
		t.Errorf("current If-Range: %d %q", resp.StatusCode, body)
	}
	// Entity-tags: sent on 200, 206 and 304; If-None-Match wins over
	// If-Modified-Since; If-Range compares them strongly.
	etag := resp.Header.Get("ETag")
	if len(etag) < 5 || etag[0] != '"' {
		t.Fatalf("ETag %q", etag)
	}
	for _, tc := range []struct {
		hdr    []string
		status int
	}{
		{[]string{"If-None-Match", etag}, 304},
		{[]string{"If-None-Match", "W/" + etag}, 304},
		{[]string{"If-None-Match", `"nope", ` + etag}, 304},
		{[]string{"If-None-Match", "*"}, 304},
		{[]string{"If-None-Match", `"nope"`}, 200},
		{[]string{"If-None-Match", `"nope"`, "If-Modified-Since", lm}, 200},
		{[]string{"If-None-Match", etag, "If-Modified-Since", "Sat, 01 Jan 2000 00:00:00 GMT"}, 304},
		{[]string{"Range", "bytes=0-1", "If-Range", etag}, 206},
		{[]string{"Range", "bytes=0-1", "If-Range", "W/" + etag}, 200},
		{[]string{"Range", "bytes=0-1", "If-Range", `"nope"`}, 200},
	} {
		resp, body := get("GET", "/index.html", tc.hdr...)
		if resp.StatusCode != tc.status || resp.Header.Get("ETag") != etag {
			t.Errorf("%q: %d ETag %q, want %d and %s", tc.hdr, resp.StatusCode, resp.Header.Get("ETag"), tc.status, etag)
		}
		if tc.status == 304 && len(body) != 0 {
			t.Errorf("%q: 304 with a body %q", tc.hdr, body)
		}
	}
	if resp, body := get("GET", "/wed.txt", "Range", "bytes=0-2", "If-Range", wed.Format(http.TimeFormat)); resp.StatusCode != 206 || string(body) != "wed" {
		t.Errorf("If-Range with a Wednesday date: %d %q", resp.StatusCode, body)
	}
}

// rawGet sends one request with the target as given and returns the status.
func rawGet(t *testing.T, addr, target, host string) int {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(nc, "GET "+target+" HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestE2ETraversal(t *testing.T) {
	outside := testRoot(t, map[string]string{"secret.txt": "secret"})
	root := testRoot(t, map[string]string{"index.html": "home", "sub/inner.txt": "inner"})
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(outside, filepath.Join(root, "out")))
	must(os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(root, "secret-link.txt")))
	must(os.Symlink("../../"+filepath.Base(outside)+"/secret.txt", filepath.Join(root, "sub", "rel-link.txt")))
	must(os.Symlink("inner.txt", filepath.Join(root, "sub", "ok-link.txt")))
	addr := startServer(t, Config{Hosts: VirtualHosts{Hosts: []Host{{Name: CatchAll, Root: root}}}})
	rel := "/../" + filepath.Base(outside) + "/secret.txt"
	for target, want := range map[string]int{
		"/index.html":      200,
		"/sub/ok-link.txt": 200,
		rel:                404,
		"/..%2f" + filepath.Base(outside) + "%2fsecret.txt":    404,
		"/%2e%2e/" + filepath.Base(outside) + "/secret.txt":    404,
		"/sub/../../" + filepath.Base(outside) + "/secret.txt": 404,
		"/out/secret.txt":        404,
		"/secret-link.txt":       404,
		"/sub/rel-link.txt":      404,
		"/index.html%00.txt":     404,
		"/%":                     400,
		"http://x/../etc/passwd": 404,
		"/sub/..":                200, // the root's index.html
	} {
		if got := rawGet(t, addr, target, "x"); got != want {
			t.Errorf("GET %s: %d, want %d", target, got, want)
		}
	}
}

func TestE2EMaxConns(t *testing.T) {
	root := testRoot(t, siteFiles)
	addr := startServer(t, Config{Hosts: VirtualHosts{Hosts: []Host{{Name: CatchAll, Root: root}}}, Limits: Limits{MaxConns: 1}})
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	first.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(first, "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(first)
	if resp, _ := readResponse(t, br, "GET"); resp.StatusCode != 200 {
		t.Fatalf("first connection: %d", resp.StatusCode)
	}
	if got := rawGet(t, addr, "/a.txt", "x"); got != 503 {
		t.Errorf("second connection: %d, want 503", got)
	}
	first.Close()
	// Once the first closes, a slot frees up.
	deadline := time.Now().Add(5 * time.Second)
	for rawGet(t, addr, "/a.txt", "x") != 200 {
		if time.Now().After(deadline) {
			t.Fatal("no connection slot after the first closed")
		}
	}
}

func TestE2EGracefulShutdown(t *testing.T) {
	root := testRoot(t, siteFiles)
	s, err := NewServer(Config{Hosts: VirtualHosts{Hosts: []Host{{Name: CatchAll, Root: root}}}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx, ln) }()
	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(idle, "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(idle)
	readResponse(t, br, "GET")
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Serve after cancel: %v", err)
	}
	expectEOF(t, br)
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("listener still accepting after shutdown")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestE2EAccessLog(t *testing.T) {
	var log syncBuffer
	root := testRoot(t, siteFiles)
	addr := startServer(t, Config{Hosts: VirtualHosts{Hosts: []Host{{Name: CatchAll, Root: root}}}, AccessLog: &log})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(nc, "GET /a.txt HTTP/1.1\r\nHost: x\r\nReferer: http://r/\r\nUser-Agent: t\"ua\r\n\r\nGET /zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	io.ReadAll(nc)
	line := regexp.MustCompile(`^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /a\.txt HTTP/1\.1" 200 1 "http://r/" "t\\x22ua"\n` +
		`127\.0\.0\.1 - - \[[^]]+\] "GET /zz HTTP/1\.1" 404 14 "-" "-"\n$`)
	if got := log.String(); !line.MatchString(got) {
		t.Errorf("access log:\n%s", got)
	}
}

func TestE2ECurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed (apt-get install curl); skipping the curl end-to-end test")
	}
	dir := testRoot(t, map[string]string{"docroot_dirs/one/index.html": "site one", "docroot_dirs/one/d/x.txt": "0123456789",
		"docroot_dirs/two/index.html": "site two"})
	yml := filepath.Join(dir, "virtual_hosts.yaml")
	writeFile(t, yml, "virtual_hosts:\n  - hostName: one.test\n    docRoot: docroot_dirs/one\n  - hostName: two.test\n    docRoot: docroot_dirs/two\ndefault_host: one.test\n")
	vh, err := LoadVirtualHosts(yml)
	if err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, Config{Hosts: vh})
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, curl, append([]string{"-sS"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	base := "http://" + addr
	if got := run(base + "/"); got != "site one" {
		t.Errorf("default host: %q", got)
	}
	if got := run("-H", "Host: two.test", base+"/"); got != "site two" {
		t.Errorf("Host two.test: %q", got)
	}
	if got := run("-r", "2-4", base+"/d/x.txt"); got != "234" {
		t.Errorf("range: %q", got)
	}
	if got := run("-I", base+"/d/x.txt"); !strings.Contains(got, "HTTP/1.1 200 OK") || !strings.Contains(got, "Content-Length: 10") {
		t.Errorf("HEAD:\n%s", got)
	}
	if got := run("--http1.0", "-i", base+"/"); !strings.Contains(got, "Connection: close") || !strings.HasSuffix(got, "site one") {
		t.Errorf("HTTP/1.0:\n%s", got)
	}
	if got := run("-o", "/dev/null", "-w", "%{http_code}", "--path-as-is", base+"/../../etc/passwd"); got != "404" {
		t.Errorf("traversal: %q", got)
	}
	if got := run("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", base+"/d"); got != "301 "+base+"/d/" {
		t.Errorf("redirect: %q", got)
	}
	// Two URLs in one invocation share the connection.
	if got := run("-v", base+"/", base+"/d/x.txt"); !strings.Contains(got, "Re-using existing connection") {
		t.Errorf("keep-alive not reused:\n%s", got)
	}
}

// A refused request whose body is still arriving gets its answer and the
// connection closes (lingering close), and an Expect: 100-continue request
// is answered without waiting for its body.
func TestE2ERefusalWithBodyInFlight(t *testing.T) {
	root := testRoot(t, siteFiles)
	addr := startServer(t, Config{Hosts: VirtualHosts{Hosts: []Host{{Name: CatchAll, Root: root}}}, Limits: Limits{MaxBodyBytes: 1000}})
	for _, tt := range []struct {
		head   string
		body   int
		status int
	}{
		{"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", 100000, 413},
		{"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\nExpect: 100-continue\r\n\r\n", 0, 200},
		{"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 100000, 400},
	} {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			io.WriteString(nc, tt.head)
			nc.Write(make([]byte, tt.body))
		}()
		br := bufio.NewReader(nc)
		resp, _ := readResponse(t, br, "GET")
		if resp.StatusCode != tt.status || !resp.Close {
			t.Errorf("%.30q: %d close=%v, want %d and close", tt.head, resp.StatusCode, resp.Close, tt.status)
		}
		nc.Close()
		<-wrote
	}
}

// Shutting down under load ends every connection and Serve returns.
func TestE2EShutdownUnderLoad(t *testing.T) {
	root := testRoot(t, map[string]string{"a.txt": "A", "big.bin": strings.Repeat("b", 256<<10)})
	s, err := NewServer(Config{Hosts: VirtualHosts{Hosts: []Host{{Name: CatchAll, Root: root}}}, Limits: Limits{ShutdownTimeout: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx, ln) }()
	var served sync.WaitGroup
	served.Add(8)
	var clients sync.WaitGroup
	for i := range 8 {
		clients.Add(1)
		go func() {
			defer clients.Done()
			var once sync.Once
			mark := func() { once.Do(served.Done) }
			defer mark()
			nc, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				return
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(nc)
			path := []string{"/a.txt", "/big.bin"}[i%2]
			for n := 0; ; n++ {
				if _, err := io.WriteString(nc, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if n == 10 {
					mark()
				}
				if resp.Close {
					return
				}
			}
		}()
	}
	served.Wait()
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	clients.Wait()
	if n := s.open.Load(); n != 0 {
		t.Errorf("%d connections still counted open", n)
	}
}

func TestStats(t *testing.T) {
	s := testServer(t, testRoot(t, siteFiles), Limits{})
	cli, _ := pipeConn(t, s)
	send(cli, "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /zz HTTP/1.1\r\nHost: x\r\n\r\nGET /b.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	io.ReadAll(cli)
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().OpenConns != 0 {
		if time.Now().After(deadline) {
			t.Fatal("connection still open")
		}
		runtime.Gosched()
	}
	st := s.Stats()
	if st.Responses[2] != 2 || st.Responses[4] != 1 || st.BodyBytes != 1+14+2 || st.CachedFiles != 2 || st.CachedBytes != 3 {
		t.Errorf("stats %+v", st)
	}
}

// Many pipelined requests over real TCP, small and large (sendfile) files
// mixed, come back complete and in order.
func TestE2EPipelinedOverTCP(t *testing.T) {
	big := randomBytes(t, 200<<10)
	root := testRoot(t, map[string]string{"a.txt": "A", "b.txt": "BB"})
	writeFile(t, filepath.Join(root, "big.bin"), string(big))
	addr := startServer(t, Config{Hosts: VirtualHosts{Hosts: []Host{{Name: CatchAll, Root: root}}}})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	paths := []string{"/a.txt", "/b.txt", "/big.bin", "/missing", "/a.txt"}
	want := map[string][]byte{"/a.txt": []byte("A"), "/b.txt": []byte("BB"), "/big.bin": big, "/missing": []byte("404 Not Found\n")}
	const n = 200
	var wire strings.Builder
	for i := range n {
		wire.WriteString("GET " + paths[i%len(paths)] + " HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	errc := make(chan error, 1)
	go func() {
		_, err := io.WriteString(nc, wire.String())
		errc <- err
	}()
	br := bufio.NewReader(nc)
	for i := range n {
		resp, body := readResponse(t, br, "GET")
		if p := paths[i%len(paths)]; !bytes.Equal([]byte(body), want[p]) {
			t.Fatalf("response %d (%s): %d, %d bytes, want %d", i, p, resp.StatusCode, len(body), len(want[p]))
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
