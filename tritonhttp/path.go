package tritonhttp

// Outcomes of cleanPath other than success.
const (
	pathOK = iota + 1
	pathBad
	pathNotFound
)

// cleanPath percent-decodes the path p (RFC 3986 §2.1) into dst and removes
// its dot segments (RFC 3986 §5.2.4), returning the result, which starts
// with '/' and ends with '/' when it names a directory. It fails with
// pathBad for a malformed escape and pathNotFound for a path that climbs
// above the root or holds a NUL: decoding comes first, so "%2e%2e" is "..".
func cleanPath(dst, p []byte) ([]byte, int) {
	if len(p) == 0 || p[0] != '/' {
		return dst, pathBad
	}
	start := len(dst)
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' {
			if i+2 >= len(p) || unhex(p[i+1]) < 0 || unhex(p[i+2]) < 0 {
				return dst, pathBad
			}
			c = byte(unhex(p[i+1])<<4 | unhex(p[i+2]))
			i += 2
		}
		if c == 0 {
			return dst, pathNotFound
		}
		dst = append(dst, c)
	}
	dec := dst[start:]
	// Rewrite dec in place: dec[:w] is the cleaned path so far and ends in
	// '/' except after a last segment; it never outruns the reading index.
	w := 1 // dec[0] == '/'
	for r := 1; r <= len(dec); {
		end := r
		for end < len(dec) && dec[end] != '/' {
			end++
		}
		seg := dec[r:end]
		switch {
		case len(seg) == 0 || string(seg) == ".":
			// nothing
		case string(seg) == "..":
			if w == 1 {
				return dst[:start], pathNotFound
			}
			w-- // the '/' after the last segment
			for dec[w-1] != '/' {
				w--
			}
		default:
			w += copy(dec[w:], seg)
			if end < len(dec) {
				dec[w] = '/'
				w++
			}
		}
		r = end + 1
	}
	return dst[:start+w], pathOK
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// appendEscapedPath appends p with every byte outside RFC 3986's pchar set
// (and '/') percent-encoded, for a Location value.
func appendEscapedPath(dst, p []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range p {
		if isPathChar(c) {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', hex[c>>4], hex[c&15])
	}
	return dst
}

func isPathChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return containsByte("-._~!$&'()*+,;=:@/", c)
}
