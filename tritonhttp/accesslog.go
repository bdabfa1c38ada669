package tritonhttp

import (
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// accessLog writes one line per response in the combined log format:
//
//	host - - [02/Jan/2006:15:04:05 -0700] "GET / HTTP/1.1" 200 1234 "referer" "user agent"
type accessLog struct {
	w   io.Writer
	now func() time.Time
	mu  sync.Mutex
	buf []byte // guarded by mu
}

func remoteHost(nc net.Conn) string {
	a := nc.RemoteAddr()
	if a == nil {
		return "-"
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// record counts the response just queued and logs it when the log is on.
func (c *conn) record(status int, bodyBytes int64) {
	st := &c.srv.stats
	st.responses[min(status/100, len(st.responses)-1)].Add(1)
	st.bodyBytes.Add(uint64(bodyBytes))
	l := c.srv.access
	if l == nil {
		return
	}
	r := &c.req
	l.mu.Lock()
	defer l.mu.Unlock()
	b := append(l.buf[:0], c.remote...)
	b = append(b, " - - ["...)
	b = l.now().AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, "] \""...)
	b = appendQuoted(b, r.bytes(r.line))
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, bodyBytes, 10)
	b = append(b, " \""...)
	b = appendQuoted(b, r.bytes(r.referer))
	b = append(b, "\" \""...)
	b = appendQuoted(b, r.bytes(r.agent))
	b = append(b, "\"\n"...)
	l.buf = b
	l.w.Write(b)
}

// appendQuoted appends v for a quoted log field: '"', '\\' and bytes
// outside printable ASCII as \xHH (as nginx does); empty as "-".
func appendQuoted(dst, v []byte) []byte {
	if len(v) == 0 {
		return append(dst, '-')
	}
	const hex = "0123456789ABCDEF"
	for _, c := range v {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			dst = append(dst, '\\', 'x', hex[c>>4], hex[c&15])
			continue
		}
		dst = append(dst, c)
	}
	return dst
}
