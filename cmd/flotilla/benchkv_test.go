package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// The histogram's buckets tile the values without gaps, and each bucket is
// narrow enough for the promised 1% error.
func TestLatencyHistBuckets(t *testing.T) {
	for b := 0; b < (64-histSubBits)<<histSubBits; b++ {
		lo, hi := histLow(b), histLow(b+1)
		if hi <= lo {
			t.Fatalf("bucket %d: low %d, next low %d", b, lo, hi)
		}
		if histBucket(lo) != b || histBucket(hi-1) != b {
			t.Fatalf("bucket %d [%d, %d): values map to %d and %d", b, lo, hi, histBucket(lo), histBucket(hi-1))
		}
		if lo >= 1<<histSubBits && float64(hi-lo)/float64(lo) > 0.01 {
			t.Fatalf("bucket %d [%d, %d) is wider than 1%%", b, lo, hi)
		}
	}
}

// Quantiles agree with the sorted values to within the bucket error.
func TestLatencyHistQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	h := newLatencyHist()
	var vals []float64
	for range 100_000 {
		us := rng.ExpFloat64() * 2000
		h.record(time.Duration(us) * time.Microsecond)
		vals = append(vals, float64(int64(us)))
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := vals[int(q*float64(len(vals)))-1]
		if got := h.quantile(q); got < want*0.99-1 || got > want*1.01+1 {
			t.Errorf("quantile %v = %v, want %v within 1%%", q, got, want)
		}
	}
	if h.count != uint64(len(vals)) || float64(h.max) != vals[len(vals)-1] {
		t.Errorf("count %d max %d, want %d and %v", h.count, h.max, len(vals), vals[len(vals)-1])
	}
}
