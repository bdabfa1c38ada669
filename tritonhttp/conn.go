package tritonhttp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// Connection states, read by the shutdown path.
const (
	stateActive = iota + 1 // reading or answering a request
	stateIdle              // waiting for the first byte of a request
)

const (
	readBufferSize = 4 << 10
	flushThreshold = 64 << 10 // gathered pipelined responses are written past this
	sendChunk      = 1 << 20  // a large body is sent in chunks, each within WriteTimeout
)

// conn is one client connection and the buffers it reuses across requests.
// Only its own goroutine touches it, except state and nc (shutdown).
type conn struct {
	srv    *Server
	nc     net.Conn
	br     *bufio.Reader
	req    request
	out    []byte // responses not yet written
	clean  []byte // scratch: the cleaned path
	key    []byte // scratch: the cache key
	hdr    []byte // scratch: Location, Content-Range values
	state  atomic.Int32
	rdl    time.Time // read deadline last set
	wdl    time.Time // write deadline last set
	remote string    // client address for the access log
}

// serve runs the request loop until the client or the server ends it.
func (c *conn) serve() {
	lim := &c.srv.lim
	for n := 1; ; n++ {
		if c.br.Buffered() == 0 {
			if c.flush() != nil || !c.waitIdle() {
				return
			}
		}
		c.readBy(lim.HeaderTimeout)
		err := c.req.read(c.br, lim)
		if err != nil {
			c.refuse(err)
			return
		}
		keep := c.req.persistent() && n < lim.MaxRequestsPerConn && !c.srv.closing.Load()
		if !c.respond(keep) || !keep {
			if c.flush() == nil && c.req.unreadBody {
				c.lingerClose()
			}
			return
		}
		if len(c.out) >= flushThreshold && c.flush() != nil {
			return
		}
	}
}

// waitIdle waits for the first byte of the next request within the idle
// timeout; it reports false when the connection should close (timeout,
// EOF, or shutdown).
func (c *conn) waitIdle() bool {
	c.state.Store(stateIdle)
	c.readBy(c.srv.lim.IdleTimeout)
	// The shutdown path sets closing before it expires idle connections'
	// deadlines, so checking after ours is set cannot miss it.
	if c.srv.closing.Load() {
		return false
	}
	_, err := c.br.Peek(1)
	c.state.Store(stateActive)
	return err == nil
}

// refuse answers a request that could not be read, if it had begun, and
// the connection then closes (RFC 9112 §9.6).
func (c *conn) refuse(err error) {
	var se *statusError
	status := 400 // a timeout or EOF in the middle of a request
	switch {
	case errors.As(err, &se):
		status = se.status
	case !c.req.started:
		c.flush()
		return
	}
	c.sendError(status, false, true)
	if c.flush() == nil {
		c.lingerClose()
	}
}

// Lingering close bounds (RFC 9112 §9.6).
const (
	lingerTimeout = 500 * time.Millisecond
	lingerBytes   = 256 << 10
)

// lingerClose half-closes a TCP connection and drains, briefly, what the
// client is still sending: closing with unread input would reset the
// connection and could destroy the response before the client reads it
// (RFC 9112 §9.6).
func (c *conn) lingerClose() {
	cw, ok := c.nc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	c.nc.SetReadDeadline(time.Now().Add(lingerTimeout))
	c.br.Discard(c.br.Buffered())
	io.CopyN(io.Discard, c.nc, lingerBytes)
}

// readBy sets the read deadline d from now. A deadline within d/32 of the
// one already set is left alone: resetting timers on every request costs
// more than the slack.
func (c *conn) readBy(d time.Duration) {
	t := time.Now().Add(d)
	if !c.rdl.IsZero() && !t.Before(c.rdl) && t.Sub(c.rdl) < d/32 {
		return
	}
	c.rdl = t
	c.nc.SetReadDeadline(t)
}

func (c *conn) writeBy(d time.Duration) {
	t := time.Now().Add(d)
	if !c.wdl.IsZero() && !t.Before(c.wdl) && t.Sub(c.wdl) < d/32 {
		return
	}
	c.wdl = t
	c.nc.SetWriteDeadline(t)
}

// flush writes the gathered responses.
func (c *conn) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	c.writeBy(c.srv.lim.WriteTimeout)
	_, err := c.nc.Write(c.out)
	c.out = c.out[:0]
	return err
}

// respond answers the parsed request; it reports false when the connection
// must close because a write failed.
func (c *conn) respond(keep bool) bool {
	r := &c.req
	if r.method == methodOther {
		return c.sendError(405, true, !keep)
	}
	s := c.srv.router.lookup(r.bytes(r.hostName))
	if s == nil {
		return c.sendError(404, false, !keep)
	}
	clean, st := cleanPath(c.clean[:0], r.bytes(r.path))
	c.clean = clean
	switch st {
	case pathBad:
		c.sendError(400, false, true)
		return false
	case pathNotFound:
		return c.sendError(404, false, !keep)
	}
	dirSlash := clean[len(clean)-1] == '/'
	if dirSlash {
		clean = append(clean, "index.html"...)
		c.clean = clean
	}
	c.key = append(append(c.key[:0], s.id), clean...)
	e, err := c.srv.cache.get(s, c.key, clean)
	if err != nil {
		return c.sendError(404, false, !keep)
	}
	if e.dir {
		if dirSlash {
			return c.sendError(404, false, !keep) // index.html is a directory
		}
		return c.redirect(clean, keep)
	}
	return c.sendFile(e, keep)
}

// head returns a response with the connection fields set for keep.
func (c *conn) head(status int, keep bool) response {
	return response{
		status:        status,
		contentLength: -1,
		close:         !keep,
		keepAlive:     keep && c.req.proto == 10,
	}
}

// sendError sends a status with a short text body. A parse-level refusal
// has no usable request, so it is always sent with Connection: close.
func (c *conn) sendError(status int, allow, closeConn bool) bool {
	rs := c.head(status, !closeConn)
	rs.allow = allow
	rs.contentType = "text/plain; charset=utf-8"
	text := statusText(status)
	rs.contentLength = int64(len(text) + 5)
	c.out = appendHead(c.out, &rs, c.srv.date.get())
	body := int64(0)
	if c.req.method != methodHEAD {
		c.out = append(c.out, byte('0'+status/100), byte('0'+status/10%10), byte('0'+status%10), ' ')
		c.out = append(c.out, text...)
		c.out = append(c.out, '\n')
		body = rs.contentLength
	}
	c.record(status, body)
	return true
}

// redirect sends 301 to the directory's slash form (RFC 9110 §15.4.2),
// built from the cleaned path so that it can never name another host.
func (c *conn) redirect(clean []byte, keep bool) bool {
	r := &c.req
	loc := appendEscapedPath(c.hdr[:0], clean)
	loc = append(loc, '/')
	if r.query.present() {
		loc = append(append(loc, '?'), r.bytes(r.query)...)
	}
	c.hdr = loc
	rs := c.head(301, keep)
	rs.location = loc
	rs.contentLength = 0
	c.out = appendHead(c.out, &rs, c.srv.date.get())
	c.record(301, 0)
	return true
}

// sendFile answers GET or HEAD for a regular file: 304 when the client's
// copy is current (If-None-Match, else If-Modified-Since), 206 or 416 for a
// range, else 200.
func (c *conn) sendFile(e *entry, keep bool) bool {
	r := &c.req
	date := c.srv.date.get()
	notModified := false
	switch {
	case r.ifNone.present():
		// If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
		// Several field lines form one list; rather than join them, answer
		// in full, which is always correct.
		notModified = r.ifNones == 1 && etagListMatches(r.bytes(r.ifNone), e.etag)
	case r.ims.present():
		t, ok := parseHTTPDate(r.bytes(r.ims))
		notModified = ok && !e.modTime.After(t)
	}
	if notModified {
		// Last-Modified only guides caches that lack the tag
		// (RFC 9110 §15.4.5); the ETag says it all.
		rs := c.head(304, keep)
		rs.etag = e.etag
		c.out = appendHead(c.out, &rs, date)
		c.record(304, 0)
		return true
	}
	var f *os.File
	info := e
	if e.body == nil {
		// Not cached: open now, and describe what was opened.
		var err error
		if f, err = openFile(e.resolved); err != nil {
			return c.sendError(404, false, !keep)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return c.sendError(404, false, !keep)
		}
		if fi.Size() != e.size || !bytes.Equal(makeETag(fi.ModTime(), fi.Size()), e.etag) {
			info = &entry{resolved: e.resolved}
			info.setInfo(fi)
		}
	}
	rs := c.head(200, keep)
	rs.lastModified, rs.etag, rs.contentType = info.lastMod, info.etag, info.ctype
	start, n := int64(0), info.size
	if r.rng.present() && c.rangeApplies(info) {
		br, st := parseRange(r.bytes(r.rng), info.size)
		switch st {
		case rangeUnsatisfiable:
			rs = c.head(416, keep)
			rs.contentRange = appendInt(append(c.hdr[:0], "bytes */"...), info.size)
			rs.contentLength = 0
			c.out = appendHead(c.out, &rs, date)
			c.record(416, 0)
			return true
		case rangeOK:
			rs.status = 206
			cr := appendInt(append(c.hdr[:0], "bytes "...), br.start)
			cr = appendInt(append(cr, '-'), br.end)
			rs.contentRange = appendInt(append(cr, '/'), info.size)
			start, n = br.start, br.end-br.start+1
		}
	}
	rs.acceptRanges = rs.status == 200
	rs.contentLength = n
	// Gathered output stays within flushThreshold plus one response.
	if len(c.out) > 0 && len(c.out)+int(n) > flushThreshold && c.flush() != nil {
		return false
	}
	c.out = appendHead(c.out, &rs, date)
	if r.method == methodHEAD {
		c.record(rs.status, 0)
		return true
	}
	c.record(rs.status, n)
	if f == nil {
		c.out = append(c.out, e.body[start:start+n]...)
		return true
	}
	return c.sendBody(f, start, n)
}

// rangeApplies evaluates If-Range (RFC 9110 §13.1.5): the range holds only
// when the validator is the file's entity-tag (compared strongly: a weak
// tag never matches) or a date equal to Last-Modified.
func (c *conn) rangeApplies(e *entry) bool {
	r := &c.req
	if !r.ifRng.present() {
		return true
	}
	v := trimOWS(r.bytes(r.ifRng))
	if bytes.HasPrefix(v, []byte(`"`)) || bytes.HasPrefix(v, []byte("W/")) {
		return bytes.Equal(v, e.etag)
	}
	t, ok := parseHTTPDate(v)
	return ok && t.Equal(e.modTime)
}

// sendBody writes the gathered head, then n bytes of f from start, in
// chunks so that each chunk gets its own write deadline. From a *os.File to
// a *net.TCPConn io.Copy becomes sendfile(2).
func (c *conn) sendBody(f *os.File, start, n int64) bool {
	if c.flush() != nil {
		return false
	}
	if start > 0 {
		if _, err := f.Seek(start, io.SeekStart); err != nil {
			return false
		}
	}
	for n > 0 {
		chunk := min(n, sendChunk)
		c.writeBy(c.srv.lim.WriteTimeout)
		w, err := io.CopyN(c.nc, f, chunk)
		n -= w
		if err != nil {
			return false
		}
	}
	return true
}

func appendInt(dst []byte, v int64) []byte {
	if v == 0 {
		return append(dst, '0')
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, b[i:]...)
}
