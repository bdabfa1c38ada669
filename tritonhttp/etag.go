package tritonhttp

import (
	"bytes"
	"strconv"
	"time"
)

// makeETag returns the strong entity-tag of a file with modification time
// mod and size: "<mtime>-<size>", both in lower-case hex, the mtime in
// nanoseconds. (nginx uses seconds; a file rewritten within the same second
// at the same size would then keep its tag, and a strong tag must change
// with the content.)
func makeETag(mod time.Time, size int64) []byte {
	b := append(make([]byte, 0, 40), '"')
	b = strconv.AppendInt(b, mod.UnixNano(), 16)
	b = append(b, '-')
	b = strconv.AppendInt(b, size, 16)
	return append(b, '"')
}

// etagListMatches evaluates an If-None-Match value against etag with the
// weak comparison (RFC 9110 §8.8.3.2, §13.1.2): "*" matches, else any
// entity-tag in the comma-separated list whose opaque part equals etag's,
// W/ or not. A value that does not parse matches nothing, so the server
// answers in full, which is always correct.
func etagListMatches(v, etag []byte) bool {
	v = trimOWS(v)
	if len(v) == 1 && v[0] == '*' {
		return true
	}
	for len(v) > 0 {
		if v[0] == ',' || v[0] == ' ' || v[0] == '\t' {
			v = v[1:]
			continue
		}
		if bytes.HasPrefix(v, []byte("W/")) {
			v = v[2:]
		}
		if len(v) == 0 || v[0] != '"' {
			return false
		}
		end := bytes.IndexByte(v[1:], '"')
		if end < 0 {
			return false
		}
		tag := v[:end+2]
		if bytes.Equal(tag, etag) {
			return true
		}
		v = v[end+2:]
		if len(v) > 0 && v[0] != ',' && v[0] != ' ' && v[0] != '\t' {
			return false
		}
	}
	return false
}
