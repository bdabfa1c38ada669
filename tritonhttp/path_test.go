package tritonhttp

import "testing"

func TestCleanPath(t *testing.T) {
	tests := []struct {
		in, want string
		st       int
	}{
		{"/", "/", pathOK},
		{"/index.html", "/index.html", pathOK},
		{"/a/b/", "/a/b/", pathOK},
		{"/a//b", "/a/b", pathOK},
		{"/a/./b", "/a/b", pathOK},
		{"/a/b/..", "/a/", pathOK},
		{"/a/b/../c", "/a/c", pathOK},
		{"/a/.", "/a/", pathOK},
		{"/a/b/../../c/", "/c/", pathOK},
		{"/%7Euser/x%20y.txt", "/~user/x y.txt", pathOK},
		{"/a%2Fb", "/a/b", pathOK},
		{"/..", "", pathNotFound},
		{"/../etc/passwd", "", pathNotFound},
		{"/a/../../etc/passwd", "", pathNotFound},
		{"/%2e%2e/etc/passwd", "", pathNotFound},
		{"/%2E%2E%2Fetc%2Fpasswd", "", pathNotFound},
		{"/a/%2e%2e/%2e%2e/x", "", pathNotFound},
		{"/..%2f..%2fetc", "", pathNotFound},
		{"/a%00.html", "", pathNotFound},
		{"/%", "", pathBad},
		{"/%4", "", pathBad},
		{"/%zz", "", pathBad},
		{"", "", pathBad},
		{"x", "", pathBad},
	}
	for _, tt := range tests {
		got, st := cleanPath(nil, []byte(tt.in))
		if st != tt.st || st == pathOK && string(got) != tt.want {
			t.Errorf("cleanPath(%q) = %q, %d; want %q, %d", tt.in, got, st, tt.want, tt.st)
		}
	}
}

func TestAppendEscapedPath(t *testing.T) {
	for in, want := range map[string]string{
		"/a b/": "/a%20b/", "/x?y#z": "/x%3Fy%23z", "/ü": "/%C3%BC", "/a-b_c.d~e": "/a-b_c.d~e",
	} {
		if got := string(appendEscapedPath(nil, []byte(in))); got != want {
			t.Errorf("appendEscapedPath(%q) = %q, want %q", in, got, want)
		}
	}
}
