package dsort

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	setChunkShift(10) // 1024-record chunks: most tests cross chunk boundaries
	goleak.VerifyTestMain(m)
}

// genFile writes n generated records to a new file in dir and returns its path and Sum.
func genFile(t *testing.T, dir, name string, n uint64, o GenOptions) (string, Sum) {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := Generate(f, n, o)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return p, sum
}

// checkSorted validates files in sequence against want, and that their
// concatenation equals a stable sort of the input records.
func checkSorted(t *testing.T, want Sum, files ...string) Report {
	t.Helper()
	rep, err := Validate(files...)
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	if !rep.Sorted() {
		t.Errorf("output not sorted: %d unordered, first at %s", rep.Unordered, rep.FirstUnordered)
	}
	if rep.Sum != want {
		t.Errorf("output %v, input %v", rep.Sum, want)
	}
	return rep
}

// naiveSort is the oracle: a stable sort of whole records by key.
func naiveSort(recs []byte) []byte {
	n := len(recs) / RecordSize
	rs := make([][]byte, n)
	for i := range rs {
		rs[i] = recs[i*RecordSize : (i+1)*RecordSize]
	}
	slices.SortStableFunc(rs, func(a, b []byte) int { return bytes.Compare(a[:KeySize], b[:KeySize]) })
	return bytes.Join(rs, nil)
}

func readAll(t *testing.T, files ...string) []byte {
	t.Helper()
	var b []byte
	for _, f := range files {
		d, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, d...)
	}
	return b
}

var bg = context.Background()
