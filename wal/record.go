package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/flotilla-dev/flotilla/raft"
)

// A segment file is a sequence of records. Each record is a 16-byte header
// followed by its payload (all integers little-endian):
//
//	0          4       8          12      15   16
//	+----------+-------+----------+-------+----+----------------+
//	|header CRC|  len  | data CRC | 0 0 0 |type| payload (len)  |
//	+----------+-------+----------+-------+----+----------------+
//
// Both CRCs are CRC32C (Castagnoli) started from a seed that depends on the
// record's position: posSeed(segment sequence number, byte offset). The data
// CRC covers bytes 15 to the end (the type byte and the payload); the header
// CRC covers bytes 4 to 15. A record copied to another offset or another
// segment therefore fails both checks, and a damaged length is caught by the
// header CRC before it is trusted.
const headerSize = 16

// MaxRecordBytes bounds a record's payload. A decoder rejects a larger
// length before it allocates; Save rejects an entry whose record would
// exceed it (entry Data of at most MaxRecordBytes-17 bytes).
const MaxRecordBytes = 64<<20 + 1<<10

// recType identifies a record's payload.
type recType uint8

const (
	// recMeta is the first record of every segment: magic, version, cluster
	// and node IDs, the segment's sequence number, and the state as of the
	// segment's creation (hard state and snapshot marker), so that a segment
	// can be replayed without the ones before it.
	recMeta recType = iota + 1
	// recEntry is one raft.Entry. An entry at an index already stored
	// replaces it and every entry after it.
	recEntry
	// recHardState is a raft.HardState that replaces the previous one.
	recHardState
	// recSnapshot marks a snapshot stored in its own file: index, term, the
	// file's CRC, and whether the log was discarded (InstallSnapshot) or
	// only compacted up to the index (SaveSnapshot).
	recSnapshot
	// recSync starts a write that follows a sync of the segment: the offset
	// up to which the segment was durable when the write was issued. It is
	// what tells recovery whether damage lies in synced data (a later write
	// says so: corruption) or in the last unsynced writes (a torn tail).
	recSync
)

func (t recType) String() string {
	switch t {
	case recMeta:
		return "meta"
	case recEntry:
		return "entry"
	case recHardState:
		return "hardstate"
	case recSnapshot:
		return "snapshot"
	case recSync:
		return "sync"
	}
	return fmt.Sprintf("recType(%d)", uint8(t))
}

// Payload sizes of the fixed-size records and of an entry's fixed fields.
const (
	metaSize      = 4 + 2 + 2 + 8*3 + hardStateSize + markerSize
	hardStateSize = 8 * 3
	markerSize    = 8 + 8 + 4 + 4
	entryFixed    = 8 + 8 + 1
	syncSize      = 8
	// MaxEntryBytes is the largest entry Data Save accepts.
	MaxEntryBytes = MaxRecordBytes - entryFixed
)

// metaMagic starts every meta payload ("FLWA"); metaVersion is the format
// written. Version 2 added sync records; this build reads versions 1 and 2.
const (
	metaMagic      = 0x41574c46
	metaVersion    = 2
	minMetaVersion = 1
)

// markerInstall is set in a snapshot marker's flags when the log was
// discarded (InstallSnapshot) rather than compacted (SaveSnapshot).
const markerInstall = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors the frame decoder returns; recovery turns them into a torn tail or
// a *CorruptError.
var (
	errShort     = errors.New("record runs past the end of the data")
	errHeaderCRC = errors.New("header checksum mismatch")
	errDataCRC   = errors.New("data checksum mismatch")
	// errZeroHeader is a header of zero bytes followed, somewhere, by data
	// that is not zero (zeros alone are a preallocated segment's free space).
	errZeroHeader = errors.New("zero bytes where a record header should be")
	errTooLarge   = errors.New("record length exceeds the maximum")
	errReserved   = errors.New("reserved header bytes are not zero")
	errType       = errors.New("unknown record type")
)

// record is one decoded frame. payload aliases the decoder's buffer.
type record struct {
	typ     recType
	payload []byte
}

// posSeed is the CRC seed of the record at offset off of segment seq: the
// offset's low 32 bits (distinct for every offset of a segment smaller than
// 4 GiB, so a record moved within a segment is always caught) mixed with a
// hash of seq (so a record moved between segments is caught but with
// probability 2^-32). It is arithmetic, not a CRC over a buffer, so that
// encoding and decoding allocate nothing.
func posSeed(seq uint64, off int64) uint32 {
	x := seq*0x9e3779b97f4a7c15 + uint64(off)>>32
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return uint32(off) ^ uint32(x) ^ uint32(x>>32)
}

// frameHeader is a decoded, checked record header.
type frameHeader struct {
	typ  recType
	n    int64 // payload length, at most MaxRecordBytes
	crc  uint32
	seed uint32
}

// decodeHeader checks the 16-byte header h of the record at offset off of
// segment seq. It never allocates on success.
func decodeHeader(h []byte, seq uint64, off int64) (frameHeader, error) {
	if len(h) < headerSize {
		return frameHeader{}, errShort
	}
	seed := posSeed(seq, off)
	if crc32.Update(seed, castagnoli, h[4:headerSize]) != binary.LittleEndian.Uint32(h[0:]) {
		return frameHeader{}, errHeaderCRC
	}
	if h[12] != 0 || h[13] != 0 || h[14] != 0 {
		return frameHeader{}, errReserved
	}
	fh := frameHeader{
		typ:  recType(h[15]),
		n:    int64(binary.LittleEndian.Uint32(h[4:])),
		crc:  binary.LittleEndian.Uint32(h[8:]),
		seed: seed,
	}
	if fh.n > MaxRecordBytes {
		return frameHeader{}, fmt.Errorf("%w: %d > %d", errTooLarge, fh.n, MaxRecordBytes)
	}
	if fh.typ < recMeta || fh.typ > recSync {
		return frameHeader{}, fmt.Errorf("%w %d", errType, h[15])
	}
	return fh, nil
}

// dataOK checks the data CRC against the header's type and a payload held
// apart from the header (a reader's separate buffer).
func (fh frameHeader) dataOK(payload []byte) bool {
	c := crc32.Update(fh.seed, castagnoli, typeBytes[fh.typ:fh.typ+1])
	return crc32.Update(c, castagnoli, payload) == fh.crc
}

// typeBytes[t] is the byte t, to checksum a type without allocating.
var typeBytes = func() (b [256]byte) {
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

// decodeRecord decodes the record at the start of buf, which sits at offset
// off of segment seq, and returns it with its encoded size. The payload
// aliases buf; decodeRecord never allocates on success.
func decodeRecord(buf []byte, seq uint64, off int64) (record, int, error) {
	fh, err := decodeHeader(buf, seq, off)
	if err != nil {
		return record{}, 0, err
	}
	if fh.n > int64(len(buf)-headerSize) {
		return record{}, 0, errShort
	}
	end := headerSize + fh.n
	if crc32.Update(fh.seed, castagnoli, buf[headerSize-1:end]) != fh.crc {
		return record{}, 0, errDataCRC
	}
	return record{typ: fh.typ, payload: buf[headerSize:end]}, int(end), nil
}

// encoder appends records to buf, which will be written at offset base of
// segment seq.
type encoder struct {
	buf  []byte
	seq  uint64
	base int64
	// n counts the records encoded.
	n int
}

// begin reserves a header and returns the record's start in buf.
func (e *encoder) begin() int {
	start := len(e.buf)
	e.buf = append(e.buf, make([]byte, headerSize)...)
	return start
}

// end fills in the header of the record begun at start.
func (e *encoder) end(start int, typ recType) {
	h := e.buf[start : start+headerSize]
	seed := posSeed(e.seq, e.base+int64(start))
	binary.LittleEndian.PutUint32(h[4:], uint32(len(e.buf)-start-headerSize))
	h[12], h[13], h[14], h[15] = 0, 0, 0, byte(typ)
	binary.LittleEndian.PutUint32(h[8:], crc32.Update(seed, castagnoli, e.buf[start+headerSize-1:]))
	binary.LittleEndian.PutUint32(h[0:], crc32.Update(seed, castagnoli, h[4:headerSize]))
	e.n++
}

func (e *encoder) u64(v uint64) { e.buf = binary.LittleEndian.AppendUint64(e.buf, v) }
func (e *encoder) u32(v uint32) { e.buf = binary.LittleEndian.AppendUint32(e.buf, v) }

func (e *encoder) entry(ent *raft.Entry) {
	s := e.begin()
	e.u64(ent.Term)
	e.u64(ent.Index)
	e.buf = append(e.buf, byte(ent.Type))
	e.buf = append(e.buf, ent.Data...)
	e.end(s, recEntry)
}

func (e *encoder) hardState(hs raft.HardState) {
	s := e.begin()
	e.hardStateFields(hs)
	e.end(s, recHardState)
}

func (e *encoder) hardStateFields(hs raft.HardState) {
	e.u64(hs.Term)
	e.u64(hs.Vote)
	e.u64(hs.Commit)
}

func (e *encoder) marker(m marker) {
	s := e.begin()
	e.markerFields(m)
	e.end(s, recSnapshot)
}

func (e *encoder) markerFields(m marker) {
	e.u64(m.index)
	e.u64(m.term)
	e.u32(m.crc)
	e.u32(m.flags)
}

// syncMark appends a sync record: the segment was durable up to offset
// synced when this write was issued.
func (e *encoder) syncMark(synced int64) {
	s := e.begin()
	e.u64(uint64(synced))
	e.end(s, recSync)
}

// meta appends a meta record of version m.version, or metaVersion if that
// is 0 (tests write older versions).
func (e *encoder) meta(m meta) {
	s := e.begin()
	e.u32(metaMagic)
	v := m.version
	if v == 0 {
		v = metaVersion
	}
	e.buf = binary.LittleEndian.AppendUint16(e.buf, v)
	e.buf = binary.LittleEndian.AppendUint16(e.buf, 0)
	e.u64(m.clusterID)
	e.u64(m.nodeID)
	e.u64(m.seq)
	e.hardStateFields(m.hs)
	e.markerFields(m.snap)
	e.end(s, recMeta)
}

// marker is a snapshot marker: which snapshot file holds the state up to
// index, and its CRC. The zero marker means "no snapshot".
type marker struct {
	index, term uint64
	crc         uint32
	flags       uint32
}

// meta is the payload of a segment's first record.
type meta struct {
	// version is the format version read (the writer always writes
	// metaVersion).
	version                uint16
	clusterID, nodeID, seq uint64
	hs                     raft.HardState
	snap                   marker
}

func decodeEntry(p []byte) (raft.Entry, error) {
	if len(p) < entryFixed {
		return raft.Entry{}, fmt.Errorf("entry payload of %d bytes, want at least %d", len(p), entryFixed)
	}
	return raft.Entry{
		Term:  binary.LittleEndian.Uint64(p[0:]),
		Index: binary.LittleEndian.Uint64(p[8:]),
		Type:  raft.EntryType(p[16]),
		Data:  p[entryFixed:],
	}, nil
}

func decodeHardState(p []byte) (raft.HardState, error) {
	if len(p) != hardStateSize {
		return raft.HardState{}, fmt.Errorf("hard state payload of %d bytes, want %d", len(p), hardStateSize)
	}
	return hardStateFields(p), nil
}

func hardStateFields(p []byte) raft.HardState {
	return raft.HardState{
		Term:   binary.LittleEndian.Uint64(p[0:]),
		Vote:   binary.LittleEndian.Uint64(p[8:]),
		Commit: binary.LittleEndian.Uint64(p[16:]),
	}
}

func decodeMarker(p []byte) (marker, error) {
	if len(p) != markerSize {
		return marker{}, fmt.Errorf("snapshot marker payload of %d bytes, want %d", len(p), markerSize)
	}
	m := markerFields(p)
	if m.flags&^markerInstall != 0 {
		return marker{}, fmt.Errorf("snapshot marker has unknown flags %#x", m.flags)
	}
	if m.index == 0 {
		return marker{}, errors.New("snapshot marker at index 0")
	}
	return m, nil
}

func markerFields(p []byte) marker {
	return marker{
		index: binary.LittleEndian.Uint64(p[0:]),
		term:  binary.LittleEndian.Uint64(p[8:]),
		crc:   binary.LittleEndian.Uint32(p[16:]),
		flags: binary.LittleEndian.Uint32(p[20:]),
	}
}

// decodeSync decodes a sync record's payload at offset off: the offset up
// to which the segment was synced, never beyond the record itself.
func decodeSync(p []byte, off int64) (int64, error) {
	if len(p) != syncSize {
		return 0, fmt.Errorf("sync payload of %d bytes, want %d", len(p), syncSize)
	}
	v := binary.LittleEndian.Uint64(p)
	if v > uint64(off) {
		return 0, fmt.Errorf("sync record at byte %d says the segment was synced up to byte %d, past the record itself", off, v)
	}
	return int64(v), nil
}

func decodeMeta(p []byte) (meta, error) {
	if len(p) != metaSize {
		return meta{}, fmt.Errorf("meta payload of %d bytes, want %d", len(p), metaSize)
	}
	if mg := binary.LittleEndian.Uint32(p[0:]); mg != metaMagic {
		return meta{}, fmt.Errorf("meta magic %#x, want %#x (not a flotilla WAL segment)", mg, metaMagic)
	}
	v := binary.LittleEndian.Uint16(p[4:])
	if v < minMetaVersion || v > metaVersion {
		return meta{}, fmt.Errorf("segment format version %d, this build reads versions %d to %d", v, minMetaVersion, metaVersion)
	}
	if r := binary.LittleEndian.Uint16(p[6:]); r != 0 {
		return meta{}, fmt.Errorf("meta reserved field is %#x, want 0", r)
	}
	m := meta{
		version:   v,
		clusterID: binary.LittleEndian.Uint64(p[8:]),
		nodeID:    binary.LittleEndian.Uint64(p[16:]),
		seq:       binary.LittleEndian.Uint64(p[24:]),
		hs:        hardStateFields(p[32:]),
		snap:      markerFields(p[32+hardStateSize:]),
	}
	if m.snap.flags != 0 {
		return meta{}, fmt.Errorf("meta snapshot marker has flags %#x, want 0", m.snap.flags)
	}
	return m, nil
}
