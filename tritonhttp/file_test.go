package tritonhttp

import "testing"

func TestParseRange(t *testing.T) {
	tests := []struct {
		v    string
		size int64
		want byteRange
		st   int
	}{
		{"bytes=0-0", 10, byteRange{0, 0}, rangeOK},
		{"bytes=2-5", 10, byteRange{2, 5}, rangeOK},
		{"bytes=2-100", 10, byteRange{2, 9}, rangeOK},
		{"bytes=7-", 10, byteRange{7, 9}, rangeOK},
		{"bytes=-3", 10, byteRange{7, 9}, rangeOK},
		{"bytes=-30", 10, byteRange{0, 9}, rangeOK},
		{"BYTES=1-1", 10, byteRange{1, 1}, rangeOK},
		{"bytes=10-", 10, byteRange{}, rangeUnsatisfiable},
		{"bytes=-0", 10, byteRange{}, rangeUnsatisfiable},
		{"bytes=0-", 0, byteRange{}, rangeUnsatisfiable},
		{"bytes=5-2", 10, byteRange{}, rangeNone},
		{"bytes=0-1,3-4", 10, byteRange{}, rangeNone},
		{"items=0-1", 10, byteRange{}, rangeNone},
		{"bytes=a-b", 10, byteRange{}, rangeNone},
		{"bytes=", 10, byteRange{}, rangeNone},
	}
	for _, tt := range tests {
		got, st := parseRange([]byte(tt.v), tt.size)
		if got != tt.want || st != tt.st {
			t.Errorf("parseRange(%q, %d) = %v, %d; want %v, %d", tt.v, tt.size, got, st, tt.want, tt.st)
		}
	}
}
