package dsort

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func TestSortFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    uint64
		mem  int64
		o    GenOptions
	}{
		{"empty", 0, 0, GenOptions{}},
		{"one", 1, 0, GenOptions{Seed: 1}},
		{"small", 1000, 0, GenOptions{Seed: 2}},
		{"radix", 100_000, 0, GenOptions{Seed: 3}},
		{"ascii", 100_000, 0, GenOptions{Seed: 4, ASCII: true}},
		{"skew", 100_000, 0, GenOptions{Seed: 5, Skew: true}},
		{"spill", 30_000, 700_000, GenOptions{Seed: 6}},
		{"spill-one-record-runs", 50, RecordSize, GenOptions{Seed: 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			in, sum := genFile(t, dir, "in", tc.n, tc.o)
			out := filepath.Join(dir, "out")
			st, err := SortFile(bg, in, out, Options{Mem: tc.mem})
			if err != nil {
				t.Fatal(err)
			}
			if st.Sum != sum {
				t.Errorf("stats %v, input %v", st.Sum, sum)
			}
			if tc.mem > 0 && tc.n > 0 && st.Runs < 2 {
				t.Errorf("spilled %d runs, want several", st.Runs)
			}
			checkSorted(t, sum, out)
			if got, want := readAll(t, out), naiveSort(readAll(t, in)); !bytes.Equal(got, want) {
				t.Errorf("output differs from a stable sort of the input")
			}
		})
	}
}

// TestSortDuplicates sorts keys drawn from a tiny alphabet (long runs of
// equal keys, every radix level degenerate) and checks stability.
func TestSortDuplicates(t *testing.T) {
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 0))
	for _, n := range []int{10, 1000, 200_000} {
		recs := make([]byte, n*RecordSize)
		for i := range n {
			rec := recs[i*RecordSize:]
			for j := range KeySize {
				rec[j] = byte(r.IntN(2)) * 0xff
			}
			if r.IntN(4) == 0 {
				copy(rec[:KeySize], "SAMEKEY!!!")
			}
			copy(rec[KeySize:], fmt.Sprintf("%090d", i))
		}
		for _, mem := range []int64{0, int64(n) * RecordSize / 3} {
			dir := t.TempDir()
			in := filepath.Join(dir, "in")
			if err := os.WriteFile(in, recs, 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out")
			if _, err := SortFile(bg, in, out, Options{Mem: mem, Workers: 2}); err != nil {
				t.Fatal(err)
			}
			if got, want := readAll(t, out), naiveSort(recs); !bytes.Equal(got, want) {
				t.Fatalf("n=%d mem=%d seed=%d: output differs from a stable sort", n, mem, seed)
			}
		}
	}
}

func TestSortFilePartialRecord(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	if err := os.WriteFile(in, make([]byte, 250), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	_, err := SortFile(bg, in, out, Options{})
	if !errors.Is(err, ErrPartialRecord) {
		t.Fatalf("got %v, want ErrPartialRecord", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output exists after a failed sort: %v", err)
	}
	assertNoTemp(t, dir, "in")
}

// assertNoTemp fails if dir holds anything but the named files.
func assertNoTemp(t *testing.T, dir string, keep ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !contains(keep, e.Name()) {
			t.Errorf("left behind %s", e.Name())
		}
	}
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if x == y {
			return true
		}
	}
	return false
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{
		"0": 0, "1000": 1000, "100B": 1, "150B": 1, "1kB": 10, "1MB": 10000, "1GB": 10_000_000,
		"1KiB": 10, "1MiB": 10485, "2GiB": 21474836,
	} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "1XB", "1.5GB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) succeeded", in)
		}
	}
}

func TestGenerateStartConcatenates(t *testing.T) {
	for _, o := range []GenOptions{{Seed: 9}, {Seed: 9, ASCII: true}, {Seed: 9, Skew: true}} {
		var whole, a, b bytes.Buffer
		if _, err := Generate(&whole, 300, o); err != nil {
			t.Fatal(err)
		}
		Generate(&a, 120, o)
		o.Start = 120
		Generate(&b, 180, o)
		if !bytes.Equal(whole.Bytes(), append(a.Bytes(), b.Bytes()...)) {
			t.Errorf("%+v: parts differ from the whole", o)
		}
		if o.ASCII {
			for i := 0; i < whole.Len(); i += RecordSize {
				r := whole.Bytes()[i : i+RecordSize]
				if r[98] != '\r' || r[99] != '\n' || bytes.ContainsAny(r[:98], "\r\n") {
					t.Fatalf("ASCII record %d malformed: %q", i/RecordSize, r)
				}
			}
		}
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	in, sum := genFile(t, dir, "in", 500, GenOptions{Seed: 11})
	rep, err := Validate(in)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sorted() || rep.Sum != sum {
		t.Errorf("unsorted input validated as %+v (want sum %v)", rep, sum)
	}
	out := filepath.Join(dir, "out")
	if _, err := SortFile(bg, in, out, Options{}); err != nil {
		t.Fatal(err)
	}
	// Split the sorted output in two and validate them in both orders.
	b := readAll(t, out)
	p1, p2 := filepath.Join(dir, "p1"), filepath.Join(dir, "p2")
	os.WriteFile(p1, b[:200*RecordSize], 0o644)
	os.WriteFile(p2, b[200*RecordSize:], 0o644)
	checkSorted(t, sum, p1, p2)
	if rep, _ := Validate(p2, p1); rep.Sorted() || rep.Unordered != 1 {
		t.Errorf("reversed parts: %+v, want exactly one order break", rep)
	}
	// A duplicated record changes the sum.
	os.WriteFile(p2, append(b[200*RecordSize:], b[len(b)-RecordSize:]...), 0o644)
	rep = checkSortedNoFail(t, p1, p2)
	if rep.Sum == sum || rep.Duplicates != 1 {
		t.Errorf("duplicated record: %+v", rep)
	}
}

func checkSortedNoFail(t *testing.T, files ...string) Report {
	t.Helper()
	rep, err := Validate(files...)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}
