package dsort

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Record layout (the sort-benchmark format).
const (
	RecordSize = 100 // bytes per record
	KeySize    = 10  // leading bytes compared as an unsigned big-endian integer
)

// Errors.
var (
	// ErrPartialRecord reports an input whose size is not a multiple of RecordSize.
	ErrPartialRecord = errors.New("dsort: input size is not a multiple of 100 bytes")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Sum is an order-independent checksum of a multiset of records: the count
// and the 64-bit wrapping sum of the CRC-32C of every record. Two files hold
// the same records (up to a 2^-32 chance) exactly when their Sums are equal,
// whatever their order, so a lost or duplicated record changes it.
type Sum struct {
	Records uint64 // number of records
	Hash    uint64 // sum of CRC-32C over each record's 100 bytes
}

// Add adds the records in recs, a whole number of records, to s.
func (s *Sum) Add(recs []byte) {
	for i := 0; i+RecordSize <= len(recs); i += RecordSize {
		s.Hash += uint64(crc32.Checksum(recs[i:i+RecordSize], castagnoli))
	}
	s.Records += uint64(len(recs) / RecordSize)
}

// Merge adds the records counted in o to s.
func (s *Sum) Merge(o Sum) {
	s.Records += o.Records
	s.Hash += o.Hash
}

// String prints the sum as valsort-like "records N checksum HEX".
func (s Sum) String() string {
	return fmt.Sprintf("records %d checksum %016x", s.Records, s.Hash)
}

// keyParts returns the key of rec as its first 8 bytes and its last 2 bytes.
func keyParts(rec []byte) (hi uint64, lo uint16) {
	return binary.BigEndian.Uint64(rec[:8]), binary.BigEndian.Uint16(rec[8:10])
}

// checkSize returns ErrPartialRecord, with the size and path, when size is
// not a multiple of RecordSize.
func checkSize(name string, size int64) error {
	if size%RecordSize != 0 {
		return fmt.Errorf("%w: %s has %d bytes (%d records and %d bytes left over)",
			ErrPartialRecord, name, size, size/RecordSize, size%RecordSize)
	}
	return nil
}
