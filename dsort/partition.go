package dsort

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"slices"

	"github.com/flotilla-dev/flotilla/dsort/wire"
)

const maxSample = wire.MaxPayload / KeySize

// partitioner maps a key to the server whose range holds it. Ranges are
// contiguous and ascending in server order, so the outputs concatenate.
type partitioner struct {
	n      int
	bounds []key // n-1 lower bounds of servers 1..n-1; nil: equal-width ranges
}

// key is a record key as two integers, compared hi then lo.
type key struct {
	hi uint64
	lo uint16
}

func keyOf(b []byte) key {
	hi, lo := keyParts(b)
	return key{hi, lo}
}

func (a key) less(b key) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

func cmpKey(a, b key) int {
	switch {
	case a.less(b):
		return -1
	case b.less(a):
		return 1
	}
	return 0
}

// dest returns the server of the record (or key) starting at rec.
func (p *partitioner) dest(rec []byte) int {
	if p.bounds == nil {
		// Equal-width ranges: floor(key·n / 2^80), computed on the top 64
		// bits, which with n = 2^k is exactly the k most significant bits.
		d, _ := bits.Mul64(binary.BigEndian.Uint64(rec), uint64(p.n))
		return int(d)
	}
	k := keyOf(rec)
	lo, hi := 0, len(p.bounds) // first bound greater than k
	for lo < hi {
		m := (lo + hi) / 2
		if k.less(p.bounds[m]) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

// sampleKeys reads up to size keys of the count records at off in r,
// evenly spaced, and returns them concatenated (KeySize bytes each).
func sampleKeys(r io.ReaderAt, off, count int64, size int) ([]byte, error) {
	s := int(min(count, int64(size)))
	out := make([]byte, s*KeySize)
	for i := range s {
		pos := off + (int64(i)*count/int64(s))*RecordSize
		if _, err := r.ReadAt(out[i*KeySize:(i+1)*KeySize], pos); err != nil {
			return nil, fmt.Errorf("dsort: sample: %w", err)
		}
	}
	return out, nil
}

// sampledPartitioner computes the ranges of n servers from every node's
// sample. Every node calls it with the same samples (in any order) and so
// computes the same bounds: the keys at quantiles 1/n … (n-1)/n of the
// samples' union. With no sample keys at all it falls back to equal widths.
func sampledPartitioner(n int, samples [][]byte) *partitioner {
	var all []key
	for _, s := range samples {
		for i := 0; i+KeySize <= len(s); i += KeySize {
			all = append(all, keyOf(s[i:]))
		}
	}
	if len(all) == 0 || n == 1 {
		return &partitioner{n: n}
	}
	slices.SortFunc(all, cmpKey)
	p := &partitioner{n: n, bounds: make([]key, n-1)}
	for k := 1; k < n; k++ {
		p.bounds[k-1] = all[k*len(all)/n]
	}
	return p
}
