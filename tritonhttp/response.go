package tritonhttp

import (
	"strconv"
	"sync/atomic"
	"time"
)

// statusText returns the reason phrase of the statuses this server sends.
func statusText(code int) string {
	switch code {
	case 200:
		return "OK"
	case 206:
		return "Partial Content"
	case 301:
		return "Moved Permanently"
	case 304:
		return "Not Modified"
	case 400:
		return "Bad Request"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 413:
		return "Content Too Large"
	case 414:
		return "URI Too Long"
	case 416:
		return "Range Not Satisfiable"
	case 431:
		return "Request Header Fields Too Large"
	case 500:
		return "Internal Server Error"
	case 501:
		return "Not Implemented"
	case 503:
		return "Service Unavailable"
	case 505:
		return "HTTP Version Not Supported"
	}
	return "Status " + strconv.Itoa(code)
}

// response is the head of one response. The zero value of each optional
// field means the header is not sent.
type response struct {
	status        int
	contentType   string
	contentLength int64  // -1: no Content-Length
	lastModified  []byte // an IMF-fixdate
	etag          []byte // an entity-tag, quotes included
	contentRange  []byte // "bytes a-b/size" or "bytes */size"
	location      []byte
	allow         bool // Allow: GET, HEAD
	acceptRanges  bool
	close         bool // Connection: close
	keepAlive     bool // Connection: keep-alive (HTTP/1.0 clients)
}

// appendHead appends the status line and header block of rs, with date as
// the Date value, to dst. Responses are sent as HTTP/1.1 whatever the
// request's version (RFC 9110 §2.5).
func appendHead(dst []byte, rs *response, date []byte) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(rs.status), 10)
	dst = append(dst, ' ')
	dst = append(dst, statusText(rs.status)...)
	dst = append(dst, "\r\nServer: TritonHTTP\r\nDate: "...)
	dst = append(dst, date...)
	dst = append(dst, "\r\n"...)
	if rs.lastModified != nil {
		dst = appendField(dst, "Last-Modified: ", rs.lastModified)
	}
	if rs.etag != nil {
		dst = appendField(dst, "ETag: ", rs.etag)
	}
	if rs.contentType != "" {
		dst = append(dst, "Content-Type: "...)
		dst = append(dst, rs.contentType...)
		dst = append(dst, "\r\n"...)
	}
	if rs.contentLength >= 0 {
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, rs.contentLength, 10)
		dst = append(dst, "\r\n"...)
	}
	if rs.contentRange != nil {
		dst = appendField(dst, "Content-Range: ", rs.contentRange)
	}
	if rs.acceptRanges {
		dst = append(dst, "Accept-Ranges: bytes\r\n"...)
	}
	if rs.location != nil {
		dst = appendField(dst, "Location: ", rs.location)
	}
	if rs.allow {
		dst = append(dst, "Allow: GET, HEAD\r\n"...)
	}
	switch {
	case rs.close:
		dst = append(dst, "Connection: close\r\n"...)
	case rs.keepAlive:
		dst = append(dst, "Connection: keep-alive\r\n"...)
	}
	return append(dst, "\r\n"...)
}

func appendField(dst []byte, name string, v []byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, v...)
	return append(dst, "\r\n"...)
}

// httpDate is the IMF-fixdate layout of RFC 9110 §5.6.7.
const httpDate = "Mon, 02 Jan 2006 15:04:05 GMT"

// appendHTTPDate appends t as an IMF-fixdate.
func appendHTTPDate(dst []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(dst, httpDate)
}

// parseHTTPDate reads any of the three HTTP-date forms a recipient must
// accept (RFC 9110 §5.6.7): IMF-fixdate, RFC 850 and asctime.
func parseHTTPDate(b []byte) (time.Time, bool) {
	s := string(b)
	for _, layout := range [...]string{httpDate, "Monday, 02-Jan-06 15:04:05 GMT", "Mon Jan _2 15:04:05 2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// dateCache holds the Date value of the current second, rebuilt at most once
// a second by whichever connection first sees the second change.
type dateCache struct {
	now func() time.Time
	cur atomic.Pointer[dateValue]
}

type dateValue struct {
	sec int64
	b   []byte
}

// get returns the Date value for now; the slice must not be modified.
func (d *dateCache) get() []byte {
	t := d.now()
	sec := t.Unix()
	if v := d.cur.Load(); v != nil && v.sec == sec {
		return v.b
	}
	v := &dateValue{sec: sec, b: appendHTTPDate(make([]byte, 0, len(httpDate)), t)}
	d.cur.Store(v)
	return v.b
}
