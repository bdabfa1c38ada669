package tritonhttp

import (
	"testing"
	"time"
)

func TestMakeETag(t *testing.T) {
	got := string(makeETag(time.Unix(0, 0x5f5e1000), 0x1a2b))
	if got != `"5f5e1000-1a2b"` {
		t.Fatalf("makeETag = %s", got)
	}
}

func TestETagListMatches(t *testing.T) {
	etag := []byte(`"5f5e1000-1a2b"`)
	for _, tc := range []struct {
		v    string
		want bool
	}{
		{`"5f5e1000-1a2b"`, true},
		{`W/"5f5e1000-1a2b"`, true}, // weak comparison
		{`*`, true},
		{` * `, true},
		{`"other", "5f5e1000-1a2b"`, true},
		{`"other",W/"5f5e1000-1a2b"`, true},
		{`"a,b", "5f5e1000-1a2b"`, true}, // a comma inside a tag
		{`"other"`, false},
		{`"5f5e1000-1a2c"`, false},
		{`5f5e1000-1a2b`, false}, // unquoted: does not parse
		{`"5f5e1000-1a2b`, false},
		{`"x"junk, "5f5e1000-1a2b"`, false},
		{``, false},
		{`*, "x"`, false},
	} {
		if got := etagListMatches([]byte(tc.v), etag); got != tc.want {
			t.Errorf("etagListMatches(%q) = %v, want %v", tc.v, got, tc.want)
		}
	}
}
