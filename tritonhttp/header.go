package tritonhttp

// Character classes of RFC 9110 §5.6.2 (tchar) and of the field names this
// server accepts ([A-Za-z0-9-], the TritonHTTP subset of tchar).
var (
	isTchar     [256]bool
	isNameChar  [256]bool
	isHostChar  [256]bool
	isValueCtrl [256]bool
)

func init() {
	for c := 0; c < 256; c++ {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		isNameChar[c] = alnum || c == '-'
		isTchar[c] = alnum || c < 0x80 && c != 0 && containsByte("!#$%&'*+-.^_`|~", byte(c))
		// reg-name, IP-literal and port characters (RFC 3986 §3.2.2, §3.2.3).
		isHostChar[c] = alnum || c < 0x80 && c != 0 && containsByte("-._~!$&'()*+,;=%:[]", byte(c))
		// Field values may not hold control characters other than HTAB
		// (RFC 9110 §5.5).
		isValueCtrl[c] = c < 0x20 && c != '\t' || c == 0x7f
	}
}

func containsByte(s string, b byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return true
		}
	}
	return false
}

// canonicalize rewrites a field name in place to its canonical form: the
// first letter and each letter after a '-' upper case, the rest lower case
// ("content-LENGTH" → "Content-Length"). Names are case-insensitive
// (RFC 9110 §5.1); storing them canonical lets lookups compare bytes.
func canonicalize(name []byte) {
	upper := true
	for i, c := range name {
		switch {
		case upper && c >= 'a' && c <= 'z':
			name[i] = c - ('a' - 'A')
		case !upper && c >= 'A' && c <= 'Z':
			name[i] = c + ('a' - 'A')
		}
		upper = c == '-'
	}
}

// lowerASCII lower-cases b in place.
func lowerASCII(b []byte) {
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
}

// equalFold reports whether b equals the lower-case ASCII string s, ignoring
// the case of b.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// trimOWS strips optional whitespace (SP and HTAB, RFC 9110 §5.6.3) from
// both ends of b.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
