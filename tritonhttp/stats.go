package tritonhttp

import "sync/atomic"

// Stats are a server's counters since it was made.
type Stats struct {
	OpenConns     int64  `json:"open_conns"`     // connections open now
	AcceptedConns uint64 `json:"accepted_conns"` // connections accepted and served
	RejectedConns uint64 `json:"rejected_conns"` // connections answered 503 for being over MaxConns
	// Responses counts responses by status class: Responses[2] is 2xx, and
	// so on; refusals of unreadable requests are counted too.
	Responses   [6]uint64 `json:"responses_by_class"`
	BodyBytes   uint64    `json:"body_bytes"`   // response body bytes queued (sendfile included)
	CachedFiles int       `json:"cached_files"` // entries in the file cache
	CachedBytes int64     `json:"cached_bytes"` // file content bytes in the cache
}

// counters are the live values behind Stats, updated without locks.
type counters struct {
	accepted, rejected atomic.Uint64
	responses          [6]atomic.Uint64
	bodyBytes          atomic.Uint64
}

// Stats returns a snapshot of the server's counters. It is safe to call
// from any goroutine; the values are read one by one, not atomically as a
// set.
func (s *Server) Stats() Stats {
	st := Stats{
		OpenConns:     s.open.Load(),
		AcceptedConns: s.stats.accepted.Load(),
		RejectedConns: s.stats.rejected.Load(),
		BodyBytes:     s.stats.bodyBytes.Load(),
	}
	for i := range st.Responses {
		st.Responses[i] = s.stats.responses[i].Load()
	}
	s.cache.mu.RLock()
	st.CachedFiles, st.CachedBytes = len(s.cache.m), s.cache.bytes
	s.cache.mu.RUnlock()
	return st
}
