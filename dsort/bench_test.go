package dsort

import (
	"bytes"
	"io"
	"testing"
)

// BenchmarkSort measures the in-memory radix sort and the gathered write
// of 1M records (100 MB) held in an arena: go test -bench Sort ./dsort.
func BenchmarkSort(b *testing.B) {
	setChunkShift(18) // production chunks (TestMain shrinks them)
	defer setChunkShift(10)
	var in bytes.Buffer
	if _, err := Generate(&in, 1_000_000, GenOptions{Seed: 1}); err != nil {
		b.Fatal(err)
	}
	a := viewArena(in.Bytes())
	s, g := newSorter(0), newGatherWriter(0)
	b.SetBytes(int64(in.Len()))
	b.ResetTimer()
	for b.Loop() {
		var sum Sum
		if err := g.write(io.Discard, a, s.sort(a), &sum); err != nil {
			b.Fatal(err)
		}
	}
}
