package tritonhttp

import "time"

// Limits bound what one client can make the server hold. A zero field takes
// its default (see DefaultLimits); every limit is checked before the bytes it
// guards are kept.
type Limits struct {
	// MaxRequestLine is the longest request line in bytes, line end
	// included; a longer one is answered 414 (RFC 9110 §15.5.15).
	MaxRequestLine int
	// MaxHeaderBytes bounds the field lines of one request together, line
	// ends included; more is answered 431 (RFC 6585 §5).
	MaxHeaderBytes int
	// MaxHeaders is the most field lines one request may carry (431 above).
	MaxHeaders int
	// MaxBodyBytes is the largest request body (Content-Length) that is read
	// and discarded; a larger one is answered 413 (RFC 9110 §15.5.14).
	MaxBodyBytes int64
	// MaxRequestsPerConn is how many requests one connection may make; the
	// last response carries Connection: close.
	MaxRequestsPerConn int
	// MaxConns is the most connections open at once; one more is answered
	// 503 (RFC 9110 §15.6.4) and closed.
	MaxConns int
	// IdleTimeout is how long a connection may wait with nothing of a next
	// request received before it is closed silently (RFC 9112 §9.5).
	IdleTimeout time.Duration
	// HeaderTimeout bounds the time from the first byte of a request to the
	// end of its header block; past it the request is answered 400 and the
	// connection closed (slow clients, slowloris).
	HeaderTimeout time.Duration
	// WriteTimeout bounds each write to the client, and each 1 MiB chunk of
	// a large body; past it the connection is dropped.
	WriteTimeout time.Duration
	// ShutdownTimeout is how long Serve waits for busy connections to finish
	// after its context ends before closing them.
	ShutdownTimeout time.Duration
}

// DefaultLimits are the limits a zero Limits field takes.
var DefaultLimits = Limits{
	MaxRequestLine:     8 << 10,
	MaxHeaderBytes:     16 << 10,
	MaxHeaders:         100,
	MaxBodyBytes:       1 << 20,
	MaxRequestsPerConn: 1000,
	MaxConns:           10000,
	IdleTimeout:        5 * time.Second,
	HeaderTimeout:      5 * time.Second,
	WriteTimeout:       60 * time.Second,
	ShutdownTimeout:    10 * time.Second,
}

// withDefaults returns l with every zero field set from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	def := func(v *int, dv int) {
		if *v <= 0 {
			*v = dv
		}
	}
	defDur := func(v *time.Duration, dv time.Duration) {
		if *v <= 0 {
			*v = dv
		}
	}
	def(&l.MaxRequestLine, d.MaxRequestLine)
	def(&l.MaxHeaderBytes, d.MaxHeaderBytes)
	def(&l.MaxHeaders, d.MaxHeaders)
	def(&l.MaxRequestsPerConn, d.MaxRequestsPerConn)
	def(&l.MaxConns, d.MaxConns)
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = d.MaxBodyBytes
	}
	defDur(&l.IdleTimeout, d.IdleTimeout)
	defDur(&l.HeaderTimeout, d.HeaderTimeout)
	defDur(&l.WriteTimeout, d.WriteTimeout)
	defDur(&l.ShutdownTimeout, d.ShutdownTimeout)
	return l
}
