package dsort

import (
	"encoding/binary"
	"runtime"
	"slices"
	"sync"
)

// entry is a record's key and its index in the buffer being sorted, packed
// so that comparing (hi, lo) as unsigned integers orders by key and then by
// index: hi holds key bytes 0–7, lo holds key bytes 8–9 in its top 16 bits
// and the index in its low 48 bits. Sorting entries is therefore stable.
type entry struct{ hi, lo uint64 }

const idxBits = 48

// maxSortRecords bounds one in-memory sort (the index must fit in 48 bits).
const maxSortRecords = 1 << idxBits

func (e entry) index() int { return int(e.lo & (1<<idxBits - 1)) }

func cmpEntry(a, b entry) int {
	switch {
	case a.hi < b.hi:
		return -1
	case a.hi > b.hi:
		return 1
	case a.lo < b.lo:
		return -1
	case a.lo > b.lo:
		return 1
	}
	return 0
}

func makeEntry(r []byte, i int) entry {
	return entry{
		hi: binary.BigEndian.Uint64(r[:8]),
		lo: uint64(binary.BigEndian.Uint16(r[8:10]))<<idxBits | uint64(i),
	}
}

// keyByte returns byte d (0..9) of e's key.
func (e entry) keyByte(d int) int {
	if d < 8 {
		return int(e.hi >> (56 - 8*d) & 0xff)
	}
	return int(e.lo >> (56 - 8*(d-8)) & 0xff)
}

// sorter sorts the records of one buffer by key. It keeps its scratch
// buffers between calls so that sorting run after run touches no fresh
// memory. It is not safe for concurrent use.
type sorter struct {
	workers int
	ents    []entry
	counts  [][]uint32 // per worker, 1<<topBits buckets
}

const topBits = 16

func newSorter(workers int) *sorter {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	return &sorter{workers: workers}
}

// sort returns the entries of a's records in key order, ties in input
// order. The slice is owned by s and valid until the next call.
func (s *sorter) sort(a *arena) []entry {
	n := a.n
	if cap(s.ents) < n {
		s.ents = make([]entry, n)
	}
	ents := s.ents[:n]
	if n < 1<<topBits {
		for i := range ents {
			ents[i] = makeEntry(a.rec(i), i)
		}
		slices.SortFunc(ents, cmpEntry)
		return ents
	}
	w := s.workers
	if len(s.counts) != w {
		s.counts = make([][]uint32, w)
		for i := range s.counts {
			s.counts[i] = make([]uint32, 1<<topBits)
		}
	}
	// Pass 1: per-worker histograms of the top 16 key bits.
	parallel(w, func(k int) {
		c := s.counts[k]
		clear(c)
		forRecords(a, k*n/w, (k+1)*n/w, func(recs []byte, _ int) {
			for i := 0; i < len(recs); i += RecordSize {
				c[binary.BigEndian.Uint16(recs[i:])]++
			}
		})
	})
	// Offsets: bucket by bucket, worker by worker, so each bucket holds its
	// entries in input order.
	bucketStart := make([]int, 1<<topBits+1)
	off := 0
	for b := 0; b < 1<<topBits; b++ {
		bucketStart[b] = off
		for k := 0; k < w; k++ {
			c := int(s.counts[k][b])
			s.counts[k][b] = uint32(off)
			off += c
		}
	}
	bucketStart[1<<topBits] = n
	// Pass 2: scatter entries straight into their buckets.
	parallel(w, func(k int) {
		c := s.counts[k]
		forRecords(a, k*n/w, (k+1)*n/w, func(recs []byte, first int) {
			for i := 0; i < len(recs); i += RecordSize {
				e := makeEntry(recs[i:], first+i/RecordSize)
				b := e.hi >> (64 - topBits)
				ents[c[b]] = e
				c[b]++
			}
		})
	})
	// Pass 3: sort each bucket on the remaining bytes; workers take
	// contiguous bucket ranges of about equal size.
	parallel(w, func(k int) {
		from, to := k*n/w, (k+1)*n/w
		for b := 0; b < 1<<topBits; b++ {
			st, en := bucketStart[b], bucketStart[b+1]
			// A bucket belongs to the worker whose share holds its start.
			if st == en || st < from || st >= to {
				continue
			}
			sortBucket(ents[st:en], 2)
		}
	})
	return ents
}

// forRecords calls f on the runs of records lo..hi-1 of a that lie in one
// chunk, with the index of each run's first record.
func forRecords(a *arena, lo, hi int, f func(recs []byte, first int)) {
	for lo < hi {
		c, first := a.chunk(lo >> chunkShift)
		end := min(hi, first+len(c)/RecordSize)
		f(c[(lo-first)*RecordSize:(end-first)*RecordSize], lo)
		lo = end
	}
}

// sortBucket sorts e, whose entries agree on key bytes before d, with an
// in-place MSD radix sort (American flag) that falls back to a comparison
// sort for small buckets.
func sortBucket(e []entry, d int) {
	for {
		if len(e) < 2 {
			return
		}
		if len(e) <= 256 || d >= KeySize {
			slices.SortFunc(e, cmpEntry)
			return
		}
		var count [256]int
		for _, x := range e {
			count[x.keyByte(d)]++
		}
		if count[e[0].keyByte(d)] == len(e) {
			d++ // every entry shares this byte: nothing to move
			continue
		}
		var start, next [256]int
		off := 0
		for b := range 256 {
			start[b], next[b] = off, off
			off += count[b]
		}
		for b := range 256 {
			end := start[b] + count[b]
			for next[b] < end {
				x := e[next[b]]
				for t := x.keyByte(d); t != b; t = x.keyByte(d) {
					x, e[next[t]] = e[next[t]], x
					next[t]++
				}
				e[next[b]] = x
				next[b]++
			}
		}
		for b := range 256 {
			sortBucket(e[start[b]:start[b]+count[b]], d+1)
		}
		return
	}
}

// parallel runs f(0..w-1) on w goroutines and waits for them.
func parallel(w int, f func(k int)) {
	if w == 1 {
		f(0)
		return
	}
	var wg sync.WaitGroup
	for k := range w {
		wg.Go(func() { f(k) })
	}
	wg.Wait()
}
