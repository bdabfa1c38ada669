package dsort

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"strings"
)

// GenOptions selects the records Generate writes. Record i of a file
// depends only on the seed, the flags and Start+i, so files generated with
// consecutive Start values concatenate to the file generated in one go.
type GenOptions struct {
	Seed  uint64 // selects the keys and fillers
	Start uint64 // the first record's number
	ASCII bool   // printable keys and payload, each record ending in "\r\n"
	Skew  bool   // keys crowd toward the low end (about 71% below a quarter of the key space)
}

// The layout follows gensort's: binary records are a 10-byte key, 0x00 0x11,
// the record number as 32 hex digits, 0x88 0x99 0xAA 0xBB, 48 filler bytes
// and 0xCC 0xDD 0xEE 0xFF; ASCII records are a 10-character printable key,
// two spaces, the 32 hex digits, two spaces, 52 filler characters and "\r\n".
const hexDigits = "0123456789ABCDEF"

// Generate writes n records to w and returns their Sum.
func Generate(w io.Writer, n uint64, o GenOptions) (Sum, error) {
	var sum Sum
	bw := bufio.NewWriterSize(w, 1<<20)
	buf := make([]byte, 10000*RecordSize)
	for done := uint64(0); done < n; {
		k := min(n-done, 10000)
		b := buf[:k*RecordSize]
		for i := range k {
			o.record(b[i*RecordSize:(i+1)*RecordSize], o.Start+done+i)
		}
		sum.Add(b)
		if _, err := bw.Write(b); err != nil {
			return sum, fmt.Errorf("dsort: generate: %w", err)
		}
		done += k
	}
	if err := bw.Flush(); err != nil {
		return sum, fmt.Errorf("dsort: generate: %w", err)
	}
	return sum, nil
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// record fills r with record number i.
func (o GenOptions) record(r []byte, i uint64) {
	u := splitmix(o.Seed ^ splitmix(i))
	v := splitmix(u ^ o.Seed)
	if o.Skew {
		u2, _ := bits.Mul64(u, u)
		u, _ = bits.Mul64(u2, u2)
	}
	if o.ASCII {
		x := u
		for j := range KeySize {
			var d uint64
			d, x = bits.Mul64(x, 95)
			if j == KeySize-1 && x == 0 {
				d = v % 95 // the expansion ran out of bits
			}
			r[j] = byte(' ' + d)
		}
		r[10], r[11] = ' ', ' '
	} else {
		binary.BigEndian.PutUint64(r[:8], u)
		binary.BigEndian.PutUint16(r[8:10], uint16(v))
		r[10], r[11] = 0x00, 0x11
	}
	for j := range 32 {
		if j < 16 {
			r[12+j] = '0'
		} else {
			r[12+j] = hexDigits[i>>(4*(31-j))&0xf]
		}
	}
	if o.ASCII {
		r[44], r[45] = ' ', ' '
		for j := range 52 {
			r[46+j] = hexDigits[v>>(4*(j/4%16))&0xf]
		}
		r[98], r[99] = '\r', '\n'
		return
	}
	copy(r[44:48], []byte{0x88, 0x99, 0xAA, 0xBB})
	for j := range 48 {
		r[48+j] = hexDigits[v>>(4*(j/4%16))&0xf]
	}
	copy(r[96:100], []byte{0xCC, 0xDD, 0xEE, 0xFF})
}

// ParseSize parses gen's SIZE: a plain number is a record count (as
// gensort takes); a number with a byte suffix is a size in bytes, rounded
// down to whole records: B, kB/KB, MB, GB, TB (powers of 1000) or KiB, MiB,
// GiB, TiB (powers of 1024). Examples: 1000000, 100MB, 1GB, 4GiB.
func ParseSize(s string) (records uint64, err error) {
	n, mult, err := parseSuffixed(s)
	if err != nil {
		return 0, fmt.Errorf("dsort: size %q: want a record count (1000000) or bytes with a suffix (100MB, 1GiB)", s)
	}
	if mult == 0 {
		return n, nil
	}
	hi, lo := bits.Mul64(n, mult)
	if hi != 0 {
		return 0, fmt.Errorf("dsort: size %q is too large", s)
	}
	return lo / RecordSize, nil
}

// ParseBytes parses a byte count with an optional suffix as ParseSize
// takes them (a plain number is bytes here): 512MiB, 2GB, 1000000.
func ParseBytes(s string) (int64, error) {
	n, mult, err := parseSuffixed(s)
	if err != nil {
		return 0, fmt.Errorf("dsort: byte size %q: want a number with an optional suffix (512MiB, 2GB)", s)
	}
	hi, lo := bits.Mul64(n, max(mult, 1))
	if hi != 0 || lo > 1<<62 {
		return 0, fmt.Errorf("dsort: byte size %q is too large", s)
	}
	return int64(lo), nil
}

// parseSuffixed splits s into a number and its byte unit (0: no unit).
func parseSuffixed(s string) (n, mult uint64, err error) {
	units := []struct {
		suffix string
		mult   uint64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	num := s
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err = strconv.ParseUint(strings.TrimSpace(num), 10, 64)
	return n, mult, err
}
