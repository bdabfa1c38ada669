package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/raft"
	"github.com/google/go-cmp/cmp"
)

// encodeOne encodes one record at offset off of segment seq.
func encodeOne(seq uint64, off int64, fill func(e *encoder)) []byte {
	e := encoder{seq: seq, base: off}
	fill(&e)
	return e.buf
}

// forgeHeader returns a header with a valid header CRC for any length and
// type: what only damage (or a bug) could produce.
func forgeHeader(seq uint64, off int64, n uint32, typ byte) []byte {
	h := make([]byte, headerSize)
	binary.LittleEndian.PutUint32(h[4:], n)
	h[15] = typ
	binary.LittleEndian.PutUint32(h[0:], crc32.Update(posSeed(seq, off), castagnoli, h[4:]))
	return h
}

func TestRecordRoundTrip(t *testing.T) {
	ent := raft.Entry{Term: 5, Index: 99, Type: raft.EntryNormal, Data: []byte("payload")}
	hs := raft.HardState{Term: 5, Vote: 2, Commit: 98}
	mk := marker{index: 90, term: 4, crc: 0xdeadbeef, flags: markerInstall}
	mt := meta{version: metaVersion, clusterID: 7, nodeID: 3, seq: 12, hs: hs, snap: marker{index: 80, term: 3, crc: 1}}
	b := encodeOne(12, 4096, func(e *encoder) {
		e.entry(&ent)
		e.hardState(hs)
		e.marker(mk)
		e.meta(mt)
		e.syncMark(4096)
	})
	off := 0
	var got []any
	for off < len(b) {
		rec, n, err := decodeRecord(b[off:], 12, 4096+int64(off))
		if err != nil {
			t.Fatalf("at %d: %v", off, err)
		}
		switch rec.typ {
		case recEntry:
			v, err := decodeEntry(rec.payload)
			got = append(got, v, err)
		case recHardState:
			v, err := decodeHardState(rec.payload)
			got = append(got, v, err)
		case recSnapshot:
			v, err := decodeMarker(rec.payload)
			got = append(got, v, err)
		case recMeta:
			v, err := decodeMeta(rec.payload)
			got = append(got, v, err)
		case recSync:
			v, err := decodeSync(rec.payload, 4096+int64(off))
			got = append(got, v, err)
		}
		off += n
	}
	want := []any{ent, nil, hs, nil, mk, nil, mt, nil, int64(4096), nil}
	if d := cmp.Diff(want, got, cmp.AllowUnexported(marker{}, meta{})); d != "" {
		t.Fatalf("round trip (-want +got):\n%s", d)
	}
}

func TestDecodeRecordRejects(t *testing.T) {
	good := encodeOne(3, 100, func(e *encoder) { e.hardState(raft.HardState{Term: 1}) })
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 1
		return b
	}
	tests := []struct {
		name     string
		b        []byte
		seq      uint64
		off      int64
		want     error
		wantText string
	}{
		{"good", good, 3, 100, nil, ""},
		{"empty", nil, 3, 100, errShort, ""},
		{"short header", good[:10], 3, 100, errShort, ""},
		{"short payload", good[:len(good)-1], 3, 100, errShort, ""},
		{"length bit", flip(4), 3, 100, errHeaderCRC, ""},
		{"type bit", flip(15), 3, 100, errHeaderCRC, ""},
		{"payload bit", flip(headerSize + 2), 3, 100, errDataCRC, ""},
		{"data CRC bit", flip(9), 3, 100, errHeaderCRC, ""},
		{"header CRC bit", flip(1), 3, 100, errHeaderCRC, ""},
		{"reserved bit", flip(13), 3, 100, errHeaderCRC, ""},
		{"moved to another offset", good, 3, 101, errHeaderCRC, ""},
		{"moved to another segment", good, 4, 100, errHeaderCRC, ""},
		{"zeros", make([]byte, 64), 3, 100, errHeaderCRC, ""},
		{"length over the maximum", forgeHeader(3, 100, MaxRecordBytes+1, byte(recEntry)), 3, 100, errTooLarge, "67109889 > 67109888"},
		{"length 4 GiB", forgeHeader(3, 100, 1<<32-1, byte(recEntry)), 3, 100, errTooLarge, ""},
		{"unknown type", forgeHeader(3, 100, 0, 9), 3, 100, errType, ""},
		{"type zero", forgeHeader(3, 100, 0, 0), 3, 100, errType, ""},
	}
	for _, tt := range tests {
		_, _, err := decodeRecord(tt.b, tt.seq, tt.off)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) || !strings.Contains(errText(err), tt.wantText) {
			t.Errorf("%s: got %v, want %v %s", tt.name, err, tt.want, tt.wantText)
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestDecodeRecordAllocation: the decoder works in the caller's buffer,
// whatever the length field claims. Valid records and checksum failures
// allocate nothing; an impossible header allocates only its error message.
func TestDecodeRecordAllocation(t *testing.T) {
	tests := []struct {
		name     string
		b        []byte
		maxBytes uint64 // per call
	}{
		{"valid entry", encodeOne(1, 0, func(e *encoder) { e.entry(&raft.Entry{Term: 1, Index: 1, Data: make([]byte, 1000)}) }), 0},
		{"zeros", make([]byte, 100), 0},
		{"maximum length, data missing", forgeHeader(1, 0, MaxRecordBytes, byte(recEntry)), 0},
		{"4 GiB length", forgeHeader(1, 0, 1<<32-1, byte(recEntry)), 256},
	}
	for _, tt := range tests {
		const runs = 100
		n := allocBytes(func() {
			for range runs {
				decodeRecord(tt.b, 1, 0)
			}
		})
		if n > tt.maxBytes*runs {
			t.Errorf("%s: %d bytes allocated per call, want at most %d", tt.name, n/runs, tt.maxBytes)
		}
	}
}

// TestLengthBoundAtOpen puts a record that claims the maximum length plus
// one (with a header CRC that holds) at the tail of the newest segment: Open
// reports corruption without allocating anything like the claimed size.
func TestLengthBoundAtOpen(t *testing.T) {
	dir := t.TempDir()
	w := mustOpen(t, dir, testOpts())
	if err := w.Save(hs(1, 1, 0), mkEnts(1, 1, 2), true); err != nil {
		t.Fatal(err)
	}
	size := w.size
	mustClose(t, w)
	p := segFiles(t, dir)[0]
	seq, _ := parseSegmentName(filepath.Base(p))
	f, _ := os.OpenFile(p, os.O_WRONLY, 0)
	f.WriteAt(forgeHeader(seq, size, MaxRecordBytes+1, byte(recEntry)), size)
	f.Close()
	var err error
	n := allocBytes(func() { _, err = Open(dir, testOpts()) })
	ce := wantCorrupt(t, err, p)
	if ce.Offset != size || !strings.Contains(ce.Reason, "exceeds the maximum") {
		t.Fatalf("offset %d reason %q, want %d and the length bound", ce.Offset, ce.Reason, size)
	}
	if n > 8<<20 {
		t.Fatalf("Open allocated %d bytes", n)
	}
}

func seedRecords() [][]byte {
	return [][]byte{
		encodeOne(1, 0, func(e *encoder) {
			e.meta(meta{clusterID: 7, nodeID: 3, seq: 1, hs: raft.HardState{Term: 1}, snap: marker{index: 4, term: 1, crc: 9}})
		}),
		encodeOne(1, 0, func(e *encoder) { e.entry(&raft.Entry{Term: 2, Index: 3, Type: raft.EntryNormal, Data: []byte("x")}) }),
		encodeOne(1, 0, func(e *encoder) { e.hardState(raft.HardState{Term: 2, Vote: 1, Commit: 3}) }),
		encodeOne(1, 0, func(e *encoder) { e.marker(marker{index: 3, term: 2, crc: 5, flags: markerInstall}) }),
		forgeHeader(1, 0, MaxRecordBytes+1, byte(recEntry)),
	}
}

// FuzzDecodeRecord feeds arbitrary bytes and positions to the frame decoder:
// it must not panic, must return a size within the input and the bound, and
// whatever it accepts must re-encode to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	for _, b := range seedRecords() {
		f.Add(b, uint64(1), int64(0))
	}
	f.Fuzz(func(t *testing.T, b []byte, seq uint64, off int64) {
		rec, n, err := decodeRecord(b, seq, off)
		if err != nil {
			return
		}
		if n < headerSize || n > len(b) || n-headerSize > MaxRecordBytes {
			t.Fatalf("size %d for %d input bytes", n, len(b))
		}
		decodePayload(rec)
		again := encodeOne(seq, off, func(e *encoder) {
			s := e.begin()
			e.buf = append(e.buf, rec.payload...)
			e.end(s, rec.typ)
		})
		if !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, b[:n])
		}
	})
}

// FuzzDecodePayload frames arbitrary payloads correctly, so the fuzzer
// reaches the payload decoders behind the CRCs: they must not panic.
func FuzzDecodePayload(f *testing.F) {
	for _, b := range seedRecords()[:4] {
		f.Add(b[15], b[headerSize:])
	}
	f.Fuzz(func(t *testing.T, typ byte, payload []byte) {
		b := encodeOne(1, 0, func(e *encoder) {
			s := e.begin()
			e.buf = append(e.buf, payload...)
			e.end(s, recType(typ))
		})
		rec, _, err := decodeRecord(b, 1, 0)
		if err != nil {
			return
		}
		decodePayload(rec)
	})
}

func decodePayload(rec record) {
	switch rec.typ {
	case recEntry:
		decodeEntry(rec.payload)
	case recHardState:
		decodeHardState(rec.payload)
	case recSnapshot:
		decodeMarker(rec.payload)
	case recMeta:
		decodeMeta(rec.payload)
	}
}

// FuzzDecodeSnapshot feeds arbitrary snapshot files to the snapshot decoder,
// with the IDs and the marker taken from the input so that the fuzzer gets
// past the identity checks: it must not panic, and must not allocate more
// than the input holds.
func FuzzDecodeSnapshot(f *testing.F) {
	w := &WAL{opts: testOpts()}
	s := mkSnap(2, 9, "state machine image")
	hdr := w.snapHeader(&s)
	good := append(append(bytes.Clone(hdr), s.Data...), 0, 0, 0, 0)
	f.Add(good)
	f.Add(hdr)
	f.Fuzz(func(t *testing.T, b []byte) {
		le := binary.LittleEndian
		o := testOpts()
		var m marker
		if len(b) >= snapFixed {
			o.ClusterID, o.NodeID = le.Uint64(b[8:]), le.Uint64(b[16:])
			m.index, m.term = le.Uint64(b[24:]), le.Uint64(b[32:])
		}
		w := &WAL{opts: o}
		snap, err := w.decodeSnap(bytes.NewReader(b), int64(len(b)), m)
		if err == nil && len(snap.Data) > len(b) {
			t.Fatalf("%d bytes of data from a %d-byte file", len(snap.Data), len(b))
		}
	})
}
