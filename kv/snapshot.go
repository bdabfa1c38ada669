package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"hash/fnv"

	"github.com/google/btree"
)

// snapMagic begins every snapshot; the byte after it is the format.
const (
	snapMagic  = "FKVS"
	snapFormat = 1
	// snapHeader is magic, format, applied index (8) and key count (8).
	snapHeader = len(snapMagic) + 1 + 8 + 8
	snapCRC    = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshot returns an image of the store:
//
//	"FKVS" format(1)=1 applied(8) count(8) (key value version)* crc32c(4)
//
// where integers of fixed width are little-endian, each byte string is a
// uvarint length and the bytes, version is a uvarint, keys appear in
// ascending byte order, and the CRC32C covers everything before it. The
// same contents and applied index always give the same bytes. The store is
// locked only to take an O(1) copy-on-write clone of the tree, so Apply
// proceeds while the image is encoded. The error is always nil today; it
// is there for encodings that can fail.
func (s *Store) Snapshot() ([]byte, error) {
	s.mu.Lock()
	tree, applied := s.tree.Clone(), s.applied
	s.mu.Unlock()

	size := snapHeader + snapCRC
	tree.Ascend(func(e entry) bool {
		size += len(e.key) + len(e.value) + 3*binary.MaxVarintLen64
		return true
	})
	b := make([]byte, 0, size)
	b = append(b, snapMagic...)
	b = append(b, snapFormat)
	b = binary.LittleEndian.AppendUint64(b, applied)
	b = binary.LittleEndian.AppendUint64(b, uint64(tree.Len()))
	tree.Ascend(func(e entry) bool {
		b = appendBytes(b, e.key)
		b = appendBytes(b, e.value)
		b = binary.AppendUvarint(b, e.version)
		return true
	})
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// Restore replaces the store's contents and applied index with those of
// a Snapshot image. It verifies the checksum first, then that keys are
// non-empty, strictly ascending and within MaxKeyBytes, values within
// MaxValueBytes, versions between 1 and the applied index, and the count
// and length exact. On any failure it returns an error wrapping
// ErrCorruptSnapshot and the store is unchanged. data is not retained.
func (s *Store) Restore(data []byte) error {
	tree, applied, sum, err := decodeSnapshot(data)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tree, s.applied, s.sum = tree, applied, sum
	return nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorruptSnapshot}, args...)...)
}

// decodeSnapshot parses and checks an image into a new tree, returning it
// with the applied index and the entry-hash sum.
func decodeSnapshot(data []byte) (*btree.BTreeG[entry], uint64, uint64, error) {
	if len(data) < snapHeader+snapCRC {
		return nil, 0, 0, corrupt("%d bytes is shorter than the %d-byte minimum", len(data), snapHeader+snapCRC)
	}
	body := data[:len(data)-snapCRC]
	if got, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(data[len(body):]); got != want {
		return nil, 0, 0, corrupt("checksum %#08x, want %#08x", got, want)
	}
	if string(body[:len(snapMagic)]) != snapMagic || body[len(snapMagic)] != snapFormat {
		return nil, 0, 0, corrupt("not a kv snapshot of format %d", snapFormat)
	}
	applied := binary.LittleEndian.Uint64(body[len(snapMagic)+1:])
	count := binary.LittleEndian.Uint64(body[len(snapMagic)+9:])
	r := reader{b: body[snapHeader:]}
	// Each entry takes at least 3 bytes; a larger count is a lie.
	if count > uint64(len(r.b)/3) {
		return nil, 0, 0, corrupt("%d keys cannot fit in %d bytes", count, len(r.b))
	}
	tree := btree.NewG(btreeDegree, lessEntry)
	var sum uint64
	var prev []byte
	for i := uint64(0); i < count; i++ {
		key := r.bytes("key", MaxKeyBytes, ErrKeyTooLarge)
		value := r.bytes("value", MaxValueBytes, ErrValueTooLarge)
		version := r.uvarint("version")
		if r.err != nil {
			return nil, 0, 0, corrupt("key %d: %v", i, r.err)
		}
		if err := checkSnapEntry(i, prev, key, version, applied); err != nil {
			return nil, 0, 0, err
		}
		e := entry{key: clone(key), value: clone(value), version: version}
		tree.ReplaceOrInsert(e)
		sum += entryHash(e)
		prev = key
	}
	if len(r.b) != 0 {
		return nil, 0, 0, corrupt("%d trailing bytes after %d keys", len(r.b), count)
	}
	return tree, applied, sum, nil
}

func checkSnapEntry(i uint64, prev, key []byte, version, applied uint64) error {
	switch {
	case len(key) == 0:
		return corrupt("key %d is empty", i)
	case i > 0 && bytes.Compare(prev, key) >= 0:
		return corrupt("key %d is not after key %d in byte order", i, i-1)
	case version == 0 || version > applied:
		return corrupt("key %d has version %d outside [1, %d]", i, version, applied)
	}
	return nil
}

// entryHash is a 64-bit hash of one entry: FNV-1a over the length-prefixed
// key and value and the version, then mixed.
func entryHash(e entry) uint64 {
	h := fnv.New64a()
	var buf [binary.MaxVarintLen64]byte
	h.Write(buf[:binary.PutUvarint(buf[:], uint64(len(e.key)))])
	h.Write(e.key)
	h.Write(buf[:binary.PutUvarint(buf[:], uint64(len(e.value)))])
	h.Write(e.value)
	h.Write(buf[:binary.PutUvarint(buf[:], e.version)])
	return mix64(h.Sum64())
}

// mix64 is the SplitMix64 finalizer: a bijection that spreads every input
// bit over the output, so sums of hashes do not cancel by structure.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
