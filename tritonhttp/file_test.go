package tritonhttp

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		v    string
		size int64
		want byteRange
		st   int
	}{
		{"bytes=0-0", 10, byteRange{0, 0}, rangeOK},
		{"bytes=2-5", 10, byteRange{2, 5}, rangeOK},
		{"bytes=2-100", 10, byteRange{2, 9}, rangeOK},
		{"bytes=7-", 10, byteRange{7, 9}, rangeOK},
		{"bytes=-3", 10, byteRange{7, 9}, rangeOK},
		{"bytes=-30", 10, byteRange{0, 9}, rangeOK},
		{"BYTES=1-1", 10, byteRange{1, 1}, rangeOK},
		{"bytes=10-", 10, byteRange{}, rangeUnsatisfiable},
		{"bytes=-0", 10, byteRange{}, rangeUnsatisfiable},
		{"bytes=0-", 0, byteRange{}, rangeUnsatisfiable},
		{"bytes=5-2", 10, byteRange{}, rangeNone},
		{"bytes=0-1,3-4", 10, byteRange{}, rangeNone},
		{"items=0-1", 10, byteRange{}, rangeNone},
		{"bytes=a-b", 10, byteRange{}, rangeNone},
		{"bytes=", 10, byteRange{}, rangeNone},
	}
	for _, tt := range tests {
		got, st := parseRange([]byte(tt.v), tt.size)
		if got != tt.want || st != tt.st {
			t.Errorf("parseRange(%q, %d) = %v, %d; want %v, %d", tt.v, tt.size, got, st, tt.want, tt.st)
		}
	}
}

// fakeClock is a settable clock for the cache and the Date value.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestCacheRevalidatesAfterASecond(t *testing.T) {
	outside := testRoot(t, map[string]string{"secret.txt": "secret"})
	root := testRoot(t, map[string]string{"f.txt": "old", "g.txt": "gone soon", "h.txt": "here"})
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, err := NewServer(Config{Hosts: VirtualHosts{Hosts: []Host{{Name: CatchAll, Root: root}}}, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		t.Helper()
		cli, _ := pipeConn(t, s)
		send(cli, "GET "+path+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		resp, body := readResponse(t, newReader(cli), "GET")
		return resp.StatusCode, body
	}
	for _, p := range []string{"/f.txt", "/g.txt", "/h.txt"} {
		get(p)
	}
	writeFile(t, filepath.Join(root, "f.txt"), "new content")
	os.Remove(filepath.Join(root, "g.txt"))
	os.Remove(filepath.Join(root, "h.txt"))
	if err := os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(root, "h.txt")); err != nil {
		t.Fatal(err)
	}
	clock.advance(500 * time.Millisecond)
	if st, body := get("/f.txt"); st != 200 || body != "old" {
		t.Errorf("within the second: %d %q, want the cached bytes", st, body)
	}
	clock.advance(600 * time.Millisecond)
	if st, body := get("/f.txt"); st != 200 || body != "new content" {
		t.Errorf("after the second: %d %q, want the new bytes", st, body)
	}
	if st, _ := get("/g.txt"); st != 404 {
		t.Errorf("removed file: %d, want 404", st)
	}
	if st, body := get("/h.txt"); st != 404 {
		t.Errorf("file replaced by a symlink out of the root: %d %q, want 404", st, body)
	}
}

func TestCacheBounds(t *testing.T) {
	files := map[string]string{}
	for i := range 10 {
		files[fmt.Sprintf("f%d.txt", i)] = strings.Repeat("x", 100)
	}
	root := testRoot(t, files)
	s := testServer(t, root, Limits{})
	s.cache.maxFiles, s.cache.maxBytes = 5, 300
	for i := range 10 {
		cli, _ := pipeConn(t, s)
		send(cli, fmt.Sprintf("GET /f%d.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", i))
		if resp, body := readResponse(t, newReader(cli), "GET"); resp.StatusCode != 200 || body != files[fmt.Sprintf("f%d.txt", i)] {
			t.Fatalf("f%d: %d %q", i, resp.StatusCode, body)
		}
	}
	s.cache.mu.RLock()
	defer s.cache.mu.RUnlock()
	if len(s.cache.m) != 5 || s.cache.bytes != 300 {
		t.Errorf("cache holds %d entries and %d bytes, want 5 and 300", len(s.cache.m), s.cache.bytes)
	}
}
