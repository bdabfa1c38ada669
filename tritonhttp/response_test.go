package tritonhttp

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAppendHead(t *testing.T) {
	date := []byte("Sun, 06 Nov 1994 08:49:37 GMT")
	tests := []struct {
		name string
		rs   response
		want string
	}{
		{"200", response{status: 200, contentType: "text/html; charset=utf-8", contentLength: 12, lastModified: []byte("Sat, 05 Nov 1994 08:49:37 GMT"), acceptRanges: true},
			"HTTP/1.1 200 OK\r\nServer: TritonHTTP\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nLast-Modified: Sat, 05 Nov 1994 08:49:37 GMT\r\n" +
				"Content-Type: text/html; charset=utf-8\r\nContent-Length: 12\r\nAccept-Ranges: bytes\r\n\r\n"},
		{"400 closes", response{status: 400, contentLength: 0, close: true},
			"HTTP/1.1 400 Bad Request\r\nServer: TritonHTTP\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
		{"404 without length", response{status: 404, contentLength: -1},
			"HTTP/1.1 404 Not Found\r\nServer: TritonHTTP\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"},
		{"405 allow", response{status: 405, contentLength: 0, allow: true},
			"HTTP/1.1 405 Method Not Allowed\r\nServer: TritonHTTP\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 0\r\nAllow: GET, HEAD\r\n\r\n"},
		{"206 range", response{status: 206, contentLength: 4, contentRange: []byte("bytes 2-5/32")},
			"HTTP/1.1 206 Partial Content\r\nServer: TritonHTTP\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 4\r\nContent-Range: bytes 2-5/32\r\n\r\n"},
		{"301 keep-alive for 1.0", response{status: 301, contentLength: 0, location: []byte("/d/"), keepAlive: true},
			"HTTP/1.1 301 Moved Permanently\r\nServer: TritonHTTP\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 0\r\nLocation: /d/\r\nConnection: keep-alive\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(appendHead(nil, &tt.rs, date))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("appendHead (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHTTPDate(t *testing.T) {
	want := time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)
	for _, s := range []string{"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"} {
		got, ok := parseHTTPDate([]byte(s))
		if !ok || !got.Equal(want) {
			t.Errorf("parseHTTPDate(%q) = %v, %v; want %v", s, got, ok, want)
		}
	}
	if _, ok := parseHTTPDate([]byte("yesterday")); ok {
		t.Error("parseHTTPDate accepted garbage")
	}
	if got := string(appendHTTPDate(nil, want.In(time.FixedZone("X", 3600)))); got != "Sun, 06 Nov 1994 08:49:37 GMT" {
		t.Errorf("appendHTTPDate = %q", got)
	}
}

func TestDateCacheOncePerSecond(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	d := dateCache{now: func() time.Time { return now }}
	a := d.get()
	now = now.Add(999 * time.Millisecond)
	b := d.get()
	if &a[0] != &b[0] {
		t.Error("Date rebuilt within the same second")
	}
	now = now.Add(time.Millisecond)
	if got := string(d.get()); got != "Fri, 02 Jan 2026 03:04:06 GMT" {
		t.Errorf("Date after the second changed = %q", got)
	}
}

func TestContentType(t *testing.T) {
	for name, want := range map[string]string{
		"index.html": "text/html; charset=utf-8", "a/b.CSS": "text/css; charset=utf-8", "x.png": "image/png",
		"x.JPG": "image/jpeg", "noext": "application/octet-stream", "x.unknown": "application/octet-stream",
	} {
		if got := contentType(name); got != want {
			t.Errorf("contentType(%q) = %q, want %q", name, got, want)
		}
	}
}
