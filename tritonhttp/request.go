package tritonhttp

import (
	"bufio"
	"bytes"
	"strconv"
)

// statusError is a request the server refuses while reading it, with the
// status the refusal earns. After one the connection is closed.
type statusError struct {
	status int
	reason string
}

func (e *statusError) Error() string {
	return "tritonhttp: " + strconv.Itoa(e.status) + " " + statusText(e.status) + ": " + e.reason
}

func badRequest(reason string) *statusError { return &statusError{400, reason} }

var (
	errURITooLong      = &statusError{414, "request line too long"}
	errHeaderTooLarge  = &statusError{431, "header block too large"}
	errTooManyHeaders  = &statusError{431, "too many header fields"}
	errBodyTooLarge    = &statusError{413, "request body too large"}
	errTransferCoding  = &statusError{501, "Transfer-Encoding is not supported"}
	errVersion         = &statusError{505, "only HTTP/1.0 and HTTP/1.1 are served"}
	errBareCR          = badRequest("bare CR in a line")
	errRequestLine     = badRequest("malformed request line")
	errMethod          = badRequest("method is not a token")
	errTarget          = badRequest("request target must be an absolute path (or http:// URL)")
	errFieldLine       = badRequest("malformed header field line")
	errFieldName       = badRequest("header field name must be [A-Za-z0-9-]+")
	errFieldValue      = badRequest("control character in a header field value")
	errObsFold         = badRequest("obsolete line folding")
	errNoHost          = badRequest("HTTP/1.1 request without Host")
	errTwoHosts        = badRequest("more than one Host")
	errBadHost         = badRequest("invalid Host")
	errContentLength   = badRequest("invalid Content-Length")
	errLengthAndCoding = badRequest("both Content-Length and Transfer-Encoding")
	errEmptyLines      = badRequest("too many empty lines before the request line")
)

// maxLeadingEmptyLines is how many empty lines may precede a request line
// (RFC 9112 §2.2: a server SHOULD ignore at least one).
const maxLeadingEmptyLines = 4

// Methods the parser tells apart; any other token is methodOther.
const (
	methodOther = iota + 1
	methodGET
	methodHEAD
)

// span is the half-open byte range [lo, hi) of a request's arena. The zero
// span means absent: the request line always starts the arena, so no field
// value starts at 0.
type span struct{ lo, hi int32 }

func (s span) present() bool { return s.hi > 0 }

// field is one header field line: a canonical name and a trimmed value.
type field struct{ name, value span }

// request is one parsed request. Its byte fields are spans of arena; the
// connection that owns it reuses arena and fields for the next request, so a
// request is valid only until the next read.
type request struct {
	arena  []byte  // request line then field lines, line ends stripped; bounded by the Limits
	fields []field // in arrival order; names canonical
	// started is set once any byte of this request has been consumed.
	started bool

	method   int
	line     span // the whole request line (access log)
	methodB  span
	target   span // as sent
	path     span // the path part of the target (no query), still percent-encoded
	query    span // after '?', without it; absent when there is none
	proto    int  // 10 or 11
	hostName span // Host (or the absolute-form authority), port dropped, lower case
	hosts    int  // number of Host field lines

	close, keepAlive bool  // Connection tokens
	expectContinue   bool  // Expect: 100-continue
	unreadBody       bool  // the body was left unread: the connection must close
	contentLength    int64 // -1 when absent
	chunked          bool  // a Transfer-Encoding was sent
	ims, rng, ifRng  span  // If-Modified-Since, Range, If-Range
	ifNone           span  // If-None-Match (the last field line)
	ifNones          int   // If-None-Match field lines seen
	referer, agent   span  // for the access log
	headerBytes      int   // field line bytes read so far
}

func (r *request) bytes(s span) []byte { return r.arena[s.lo:s.hi] }

func (r *request) reset() {
	arena, fields := r.arena[:0], r.fields[:0]
	*r = request{arena: arena, fields: fields, contentLength: -1}
}

// read parses the next request from br into r. It returns a *statusError
// for a request that must be refused, or the reader's error (io.EOF, a
// timeout); r.started tells whether any of the request had arrived.
func (r *request) read(br *bufio.Reader, lim *Limits) error {
	r.reset()
	var line span
	for empties := 0; ; empties++ {
		sp, _, err := r.readLine(br, lim.MaxRequestLine, errURITooLong)
		if err != nil {
			return err
		}
		if sp.hi > sp.lo {
			line = sp
			break
		}
		if empties == maxLeadingEmptyLines {
			return errEmptyLines
		}
		r.arena = r.arena[:0]
	}
	if err := r.parseRequestLine(line); err != nil {
		return err
	}
	for {
		sp, n, err := r.readLine(br, lim.MaxHeaderBytes-r.headerBytes, errHeaderTooLarge)
		if err != nil {
			return err
		}
		r.headerBytes += n
		if sp.hi == sp.lo {
			break
		}
		if len(r.fields) == lim.MaxHeaders {
			return errTooManyHeaders
		}
		if err := r.parseFieldLine(sp); err != nil {
			return err
		}
	}
	if err := r.check(); err != nil {
		return err
	}
	return r.discardBody(br, lim)
}

// readLine appends the next line to the arena and returns its span without
// the line end (CRLF or a bare LF, RFC 9112 §2.2) and the bytes consumed. A
// line of more than max bytes fails with tooLong before it is kept.
func (r *request) readLine(br *bufio.Reader, max int, tooLong error) (span, int, error) {
	lo := len(r.arena)
	n := 0
	for {
		chunk, err := br.ReadSlice('\n')
		n += len(chunk)
		if len(chunk) > 0 {
			r.started = true
		}
		if n > max {
			r.arena = r.arena[:lo]
			return span{}, n, tooLong
		}
		r.arena = append(r.arena, chunk...)
		if err == nil {
			break
		}
		if err != bufio.ErrBufferFull {
			return span{}, n, err
		}
	}
	hi := len(r.arena) - 1 // the '\n'
	if hi > lo && r.arena[hi-1] == '\r' {
		hi--
	}
	if bytes.IndexByte(r.arena[lo:hi], '\r') >= 0 {
		return span{}, n, errBareCR
	}
	return span{int32(lo), int32(hi)}, n, nil
}

// parseRequestLine splits method SP request-target SP HTTP-version
// (RFC 9112 §3).
func (r *request) parseRequestLine(line span) error {
	r.line = line
	l := r.bytes(line)
	sp1 := bytes.IndexByte(l, ' ')
	if sp1 <= 0 {
		return errRequestLine
	}
	sp2 := bytes.IndexByte(l[sp1+1:], ' ')
	if sp2 <= 0 {
		return errRequestLine
	}
	sp2 += sp1 + 1
	if bytes.IndexByte(l[sp2+1:], ' ') >= 0 {
		return errRequestLine
	}
	method, target, version := l[:sp1], l[sp1+1:sp2], l[sp2+1:]
	for _, c := range method {
		if !isTchar[c] {
			return errMethod
		}
	}
	switch string(method) {
	case "GET":
		r.method = methodGET
	case "HEAD":
		r.method = methodHEAD
	default:
		r.method = methodOther
	}
	r.methodB = span{line.lo, line.lo + int32(sp1)}
	switch string(version) {
	case "HTTP/1.1":
		r.proto = 11
	case "HTTP/1.0":
		r.proto = 10
	default:
		if len(version) == 8 && string(version[:5]) == "HTTP/" && isDigit(version[5]) && version[6] == '.' && isDigit(version[7]) {
			return errVersion
		}
		return errRequestLine
	}
	for _, c := range target {
		if c <= ' ' || c == 0x7f {
			return errTarget
		}
	}
	r.target = span{line.lo + int32(sp1) + 1, line.lo + int32(sp2)}
	return r.splitTarget()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// splitTarget finds the path and query of an origin-form target, or of an
// absolute-form one whose authority then stands for Host (RFC 9112 §3.2.1,
// §3.2.2). A fragment, which a client should not send, is dropped.
func (r *request) splitTarget() error {
	t := r.bytes(r.target)
	lo := r.target.lo
	if t[0] != '/' {
		var rest []byte
		switch {
		case len(t) > 7 && equalFold(t[:7], "http://"):
			rest = t[7:]
		case len(t) > 8 && equalFold(t[:8], "https://"):
			rest = t[8:]
		case string(t) == "*" && r.method == methodOther:
			r.path = r.target // OPTIONS *: answered 405 by the responder
			return nil
		default:
			return errTarget
		}
		alo := lo + int32(len(t)-len(rest))
		end := bytes.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		if err := r.setHost(span{alo, alo + int32(end)}); err != nil {
			return err
		}
		r.hosts = -1 // the authority wins over any Host field (RFC 9112 §3.2.2)
		if end == len(rest) || rest[end] != '/' {
			// No path: it is "/" (RFC 9112 §3.3).
			r.path = span{int32(len(r.arena)), int32(len(r.arena)) + 1}
			r.arena = append(r.arena, '/')
			r.setQuery(rest[end:], alo+int32(end))
			return nil
		}
		t, lo = rest[end:], alo+int32(end)
	}
	end := len(t)
	if i := bytes.IndexAny(t, "?#"); i >= 0 {
		end = i
		r.setQuery(t[i:], lo+int32(i))
	}
	r.path = span{lo, lo + int32(end)}
	return nil
}

func (r *request) setQuery(rest []byte, lo int32) {
	if len(rest) == 0 || rest[0] != '?' {
		return
	}
	end := bytes.IndexByte(rest, '#')
	if end < 0 {
		end = len(rest)
	}
	r.query = span{lo + 1, lo + int32(end)}
}

// parseFieldLine reads name ":" OWS value OWS (RFC 9112 §5.1).
func (r *request) parseFieldLine(sp span) error {
	b := r.bytes(sp)
	if b[0] == ' ' || b[0] == '\t' {
		return errObsFold // RFC 9112 §5.2
	}
	colon := bytes.IndexByte(b, ':')
	if colon <= 0 {
		return errFieldLine
	}
	name := b[:colon]
	for _, c := range name {
		if !isNameChar[c] {
			return errFieldName // also catches whitespace before the colon (RFC 9112 §5.1)
		}
	}
	canonicalize(name)
	raw := b[colon+1:]
	v := trimOWS(raw)
	for _, c := range v {
		if isValueCtrl[c] {
			return errFieldValue
		}
	}
	vlo := sp.lo + int32(colon+1+(len(raw)-len(trimLeftOWS(raw))))
	f := field{span{sp.lo, sp.lo + int32(colon)}, span{vlo, vlo + int32(len(v))}}
	r.fields = append(r.fields, f)
	return r.noteField(name, f.value)
}

func trimLeftOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

// noteField records the fields the server acts on.
func (r *request) noteField(name []byte, v span) error {
	switch string(name) {
	case "Host":
		if r.hosts < 0 {
			return nil // absolute-form authority already chosen
		}
		r.hosts++
		if r.hosts > 1 {
			return errTwoHosts
		}
		return r.setHost(v)
	case "Connection":
		r.noteConnection(r.bytes(v))
	case "Content-Length":
		n, ok := parseLength(r.bytes(v))
		if !ok || r.contentLength >= 0 && r.contentLength != n {
			return errContentLength
		}
		r.contentLength = n
	case "Transfer-Encoding":
		r.chunked = true
	case "Expect":
		r.expectContinue = equalFold(r.bytes(v), "100-continue")
	case "If-Modified-Since":
		r.ims = v
	case "Range":
		r.rng = v
	case "If-Range":
		r.ifRng = v
	case "If-None-Match":
		r.ifNone = v
		r.ifNones++
	case "Referer":
		r.referer = v
	case "User-Agent":
		r.agent = v
	}
	return nil
}

// noteConnection reads the comma-separated Connection options
// (RFC 9110 §7.6.1).
func (r *request) noteConnection(v []byte) {
	for len(v) > 0 {
		tok := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		tok = trimOWS(tok)
		switch {
		case equalFold(tok, "close"):
			r.close = true
		case equalFold(tok, "keep-alive"):
			r.keepAlive = true
		}
	}
}

// parseLength reads a Content-Length value: decimal digits only, at most 18
// of them (RFC 9110 §8.6).
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// setHost validates a Host value and keeps its host part, lower-cased in
// place and without the port (RFC 9110 §7.2, RFC 3986 §3.2.2).
func (r *request) setHost(v span) error {
	b := r.bytes(v)
	for _, c := range b {
		if !isHostChar[c] {
			return errBadHost
		}
	}
	end := len(b)
	if len(b) > 0 && b[0] == '[' {
		i := bytes.IndexByte(b, ']')
		if i < 0 || i+1 < len(b) && b[i+1] != ':' {
			return errBadHost
		}
		end = i + 1
	} else if i := bytes.LastIndexByte(b, ':'); i >= 0 {
		end = i
	}
	if end < len(b) {
		for _, c := range b[end+1:] {
			if !isDigit(c) {
				return errBadHost
			}
		}
	}
	lowerASCII(b[:end])
	if end > 0 && b[end-1] == '.' {
		end-- // "example.com." names the same host
	}
	r.hostName = span{v.lo, v.lo + int32(end)}
	return nil
}

// check applies the rules that need the whole header block.
func (r *request) check() error {
	if r.proto == 11 && r.hosts == 0 {
		return errNoHost // RFC 9112 §3.2
	}
	if r.chunked {
		if r.contentLength >= 0 {
			return errLengthAndCoding // RFC 9112 §6.3
		}
		return errTransferCoding
	}
	return nil
}

// discardBody reads and drops a Content-Length body (RFC 9112 §6.2): GET and
// HEAD bodies have no meaning here, but must be consumed to find the next
// request. A client that sent Expect: 100-continue waits for a go-ahead
// before sending its body; it gets the final answer instead, and the
// connection closes (RFC 9110 §10.1.1).
func (r *request) discardBody(br *bufio.Reader, lim *Limits) error {
	if r.contentLength <= 0 {
		return nil
	}
	if r.contentLength > lim.MaxBodyBytes {
		return errBodyTooLarge
	}
	if r.expectContinue && int64(br.Buffered()) < r.contentLength {
		r.unreadBody = true
		return nil
	}
	_, err := br.Discard(int(r.contentLength))
	return err
}

// persistent reports whether the connection may stay open after this
// request (RFC 9112 §9.3).
func (r *request) persistent() bool {
	if r.close || r.unreadBody {
		return false
	}
	return r.proto == 11 || r.keepAlive
}
