package wal

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// segment is one segment file. WAL.segs lists them oldest first; the last
// one is open for appending.
type segment struct {
	// seq is the segment's sequence number: 1 for the first segment of a
	// directory, one more for each segment after it. It is part of every
	// record's CRC seed and repeated in the meta record.
	seq uint64
	// name is the file's base name, see segmentName.
	name string
	// maxIndex is the largest entry index ever written to the segment, 0 if
	// it holds no entry. A segment whose maxIndex is at or before a stored
	// snapshot holds nothing the log still needs.
	maxIndex uint64
	// version is the format version of its meta record. Sync records are
	// written only to version 2 segments (an older build then refuses the
	// segment for its version, not for a record type it does not know).
	version uint16
}

const (
	segSuffix = ".wal"
	tmpSuffix = ".tmp"
	// segNameLen is the length of "%016x-%016x.wal".
	segNameLen = 16 + 1 + 16 + len(segSuffix)
)

// segmentName names segment seq whose first entry would be index first
// (the index is informational: recovery trusts only the records).
func segmentName(seq, first uint64) string {
	return fmt.Sprintf("%016x-%016x%s", seq, first, segSuffix)
}

// parseSegmentName returns the sequence number of a segment file name.
func parseSegmentName(name string) (uint64, bool) {
	if len(name) != segNameLen || name[16] != '-' || name[33:] != segSuffix {
		return 0, false
	}
	seq, err := strconv.ParseUint(name[:16], 16, 64)
	if err != nil {
		return 0, false
	}
	if _, err := strconv.ParseUint(name[17:33], 16, 64); err != nil {
		return 0, false
	}
	return seq, seq > 0
}

// segScan is what scanSegment found.
type segScan struct {
	// end is the offset just after the last record that decoded cleanly.
	end int64
	// size is the file's size.
	size int64
	// dataEnd is the offset just after the last non-zero byte of the file
	// (at least end). Past the records, a preallocated segment holds zeros
	// up to its size; those are free space, not a torn tail.
	dataEnd int64
	// bad says why decoding stopped before dataEnd; nil if it reached
	// dataEnd (the end of the file, or only zeros after the last record).
	bad error
	// impossible is set when the stopping record's header passed its CRC
	// but holds values no writer produces (a length over the maximum, an
	// unknown type): damage, never a torn tail.
	impossible bool
}

// scanSegment decodes the records of segment seq at path in order and calls
// fn for each with its offset. The record's payload is only valid during the
// call. Decoding stops at the first record that fails a frame check, or at
// a header of zeros; if only zeros follow, that is the end of the data (a
// preallocated segment's free space) and not a failure. Otherwise it is
// reported in segScan.bad, for the caller to judge a torn tail or
// corruption. An error from fn stops the scan and comes back as a
// *CorruptError at the record's offset (an error wrapping
// ErrClusterMismatch comes back as is); other errors are I/O errors.
func scanSegment(path string, seq uint64, fn func(rec record, off int64) error) (segScan, error) {
	f, err := os.Open(path)
	if err != nil {
		return segScan{}, fmt.Errorf("wal: opening segment: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return segScan{}, fmt.Errorf("wal: opening segment: %w", err)
	}
	sc := segScan{size: st.Size()}
	// stop ends the scan at sc.end for reason bad, unless only zeros follow.
	stop := func(bad error, impossible bool) (segScan, error) {
		de, err := lastData(f, sc.end, sc.size)
		if err != nil {
			return sc, fmt.Errorf("wal: reading %s: %w", path, err)
		}
		sc.dataEnd = de
		if de > sc.end {
			sc.bad, sc.impossible = bad, impossible
		}
		return sc, nil
	}
	r := bufio.NewReaderSize(f, int(min(sc.size, 1<<20)))
	var hdr [headerSize]byte
	var buf []byte
	for sc.end < sc.size {
		off := sc.end
		if sc.size-off < headerSize {
			return stop(fmt.Errorf("%w: %d bytes left, a header needs %d", errShort, sc.size-off, headerSize), false)
		}
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return sc, fmt.Errorf("wal: reading %s at %d: %w", path, off, err)
		}
		if hdr == [headerSize]byte{} {
			return stop(errZeroHeader, false)
		}
		fh, err := decodeHeader(hdr[:], seq, off)
		if err != nil {
			return stop(err, !errors.Is(err, errHeaderCRC))
		}
		if fh.n > sc.size-off-headerSize {
			return stop(fmt.Errorf("%w: a %d-byte payload with %d bytes left", errShort, fh.n, sc.size-off-headerSize), false)
		}
		// fh.n is at most MaxRecordBytes and within the file: the bound on
		// this allocation.
		if int64(cap(buf)) < fh.n {
			buf = make([]byte, fh.n)
		}
		payload := buf[:fh.n]
		if _, err := io.ReadFull(r, payload); err != nil {
			return sc, fmt.Errorf("wal: reading %s at %d: %w", path, off, err)
		}
		if !fh.dataOK(payload) {
			return stop(errDataCRC, false)
		}
		if err := fn(record{typ: fh.typ, payload: payload}, off); err != nil {
			if errors.Is(err, ErrClusterMismatch) {
				return sc, err
			}
			return sc, &CorruptError{File: path, Offset: off, Reason: fmt.Sprintf("%s record: %v", fh.typ, err)}
		}
		sc.end = off + headerSize + fh.n
	}
	sc.dataEnd = sc.end
	return sc, nil
}

// lastData returns the offset just after the last non-zero byte of f in
// [from, size), or from if there is none. It reads backwards from size in
// 1 MiB chunks, so a long preallocated tail costs a read at memory speed
// (about 25 ms for 64 MiB here). lseek(SEEK_DATA) would skip unwritten
// extents, but a filesystem that misreports dirty pages there (ZFS did in
// 2023) would hide junk this must see, so every byte is read.
func lastData(f *os.File, from, size int64) (int64, error) {
	const chunk = 1 << 20
	buf := make([]byte, min(chunk, max(size-from, 0)))
	for end := size; end > from; {
		start := max(from, end-chunk)
		b := buf[:end-start]
		if _, err := f.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != 0 {
				return start + int64(i) + 1, nil
			}
		}
		end = start
	}
	return from, nil
}

// extend makes f at least size bytes long; the new bytes read as zeros.
func extend(f *os.File, size int64) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() >= size {
		return nil
	}
	return f.Truncate(size)
}

// tailScan is what scanTail found after a record that failed its checks.
type tailScan struct {
	// valid is the offset of the first record after the bad one that passes
	// both CRC checks at its position, -1 if none.
	valid int64
	// syncAt is the offset of a sync record after the bad one saying that
	// the segment was durable up to syncedTo, past the bad record's start:
	// proof that the damage is in synced data. -1 if none.
	syncAt, syncedTo int64
	// lost says the bad record shows a lost sector: a 512-byte sector
	// overlapping it reads as zeros from the record (or the sector's start)
	// to the sector's end, what a write that reached the disk only in part
	// leaves in preallocated space. A bit flip does not look like that.
	lost bool
}

// sectorSize is the unit a disk writes whole or not at all.
const sectorSize = 512

// scanTail looks at what follows the bad record at offset bad of segment seq
// (size bytes, non-zero data up to last) to tell a torn tail from damage:
// it checks every offset in (bad, last) for a record that passes both CRC
// checks there (a header at or after last would be all zeros), skipping
// over each one found, and stops at a sync record that proves the bad
// record was synced. Candidate headers are checked first (cheap); a payload
// is read only for a header whose CRC holds. Memory is bounded by the window
// plus one record.
func scanTail(path string, seq uint64, bad, last, size int64) (tailScan, error) {
	t := tailScan{valid: -1, syncAt: -1}
	f, err := os.Open(path)
	if err != nil {
		return t, fmt.Errorf("wal: scanning the tail: %w", err)
	}
	defer f.Close()
	fail := func(err error) (tailScan, error) {
		return t, fmt.Errorf("wal: scanning the tail of %s: %w", path, err)
	}
	if t.lost, err = lostSector(f, seq, bad, size); err != nil {
		return fail(err)
	}
	const window = 1 << 20
	buf := make([]byte, min(window+headerSize, max(size-bad, 0)))
	var base, n int64 = 0, 0 // buf holds the file's bytes [base, base+n)
	var payload []byte
	for p := bad + 1; p < last && p+headerSize <= size; {
		if p < base || p+headerSize > base+n {
			base, n = p, min(int64(len(buf)), size-p)
			if _, err := f.ReadAt(buf[:n], base); err != nil && !errors.Is(err, io.EOF) {
				return fail(err)
			}
		}
		fh, err := decodeHeader(buf[p-base:p-base+headerSize], seq, p)
		if err != nil || fh.n > size-p-headerSize {
			p++
			continue
		}
		if int64(cap(payload)) < fh.n {
			payload = make([]byte, fh.n)
		}
		pl := payload[:fh.n]
		if _, err := f.ReadAt(pl, p+headerSize); err != nil && !errors.Is(err, io.EOF) {
			return fail(err)
		}
		if !fh.dataOK(pl) {
			p++
			continue
		}
		if t.valid < 0 {
			t.valid = p
		}
		if fh.typ == recSync {
			if v, err := decodeSync(pl, p); err == nil && v > bad {
				t.syncAt, t.syncedTo = p, v
				return t, nil
			}
		}
		p += headerSize + fh.n
	}
	return t, nil
}

// lostSector reports whether a sector overlapping the bad record at offset
// bad (its header's length if that checks out, else the header alone) is
// zero from max(sector start, bad) to the sector's end (or the file's).
func lostSector(f *os.File, seq uint64, bad, size int64) (bool, error) {
	var h [headerSize]byte
	hn, err := f.ReadAt(h[:], bad)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	end := bad + headerSize
	if fh, err := decodeHeader(h[:hn], seq, bad); err == nil && fh.n <= size-bad-headerSize {
		end += fh.n
	}
	end = min(end, size)
	var sec [sectorSize]byte
	for a := bad - bad%sectorSize; a < end; a += sectorSize {
		lo, hi := max(a, bad), min(a+sectorSize, size)
		if lo >= hi {
			continue
		}
		b := sec[:hi-lo]
		if _, err := f.ReadAt(b, lo); err != nil && !errors.Is(err, io.EOF) {
			return false, err
		}
		if allZero(b) {
			return true, nil
		}
	}
	return false, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
