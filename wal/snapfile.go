package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/flotilla-dev/flotilla/raft"
)

// A snapshot file, snap/<term>-<index>.snap (both 16 hex digits), holds one
// raft.Snapshot (integers little-endian):
//
//	0   magic "FLSNAP\x00\x02"
//	8   cluster ID      16  node ID
//	24  index           32  term
//	40  voter count n (uint32), 44 flags (uint32: 1 = AutoLeave)
//	48  n voter IDs, 8 bytes each
//	..  outgoing-voter count o (uint32), learner count l (uint32),
//	    o then l IDs, 8 bytes each
//	..  data length (uint64), then the data
//	end CRC32C of every byte before it (uint32)
//
// Files of format 1 ("FLSNAP\x00\x01", written before membership changes)
// have neither flags (44 is 0) nor the outgoing and learner lists, and are
// still read.
//
// The file is written to a .tmp name, fsynced, renamed and the directory
// fsynced, so it either exists whole or not at all. The snapshot marker in
// the log repeats the CRC, tying the file to the record that made it current.
const (
	snapDirName   = "snap"
	snapSuffix    = ".snap"
	snapMagic     = "FLSNAP\x00\x02"
	snapMagicV1   = "FLSNAP\x00\x01"
	flagAutoLeave = 1
	snapFixed     = 48
	snapNameLen   = 16 + 1 + 16 + len(snapSuffix)
	maxVoters     = 1 << 16
	snapOverhead  = snapFixed + 8 + 4
)

// MaxSnapshotBytes bounds a snapshot's Data. SaveSnapshot and
// InstallSnapshot reject a larger one; the reader rejects a file announcing
// more before it allocates (and never allocates more than the file holds).
const MaxSnapshotBytes = 16 << 30

func snapName(term, index uint64) string {
	return fmt.Sprintf("%016x-%016x%s", term, index, snapSuffix)
}

// snapFile is a snapshot file found in the snapshot directory.
type snapFile struct {
	term, index uint64
	name        string
}

func parseSnapName(name string) (snapFile, bool) {
	if len(name) != snapNameLen || name[16] != '-' || !strings.HasSuffix(name, snapSuffix) {
		return snapFile{}, false
	}
	t, err1 := strconv.ParseUint(name[:16], 16, 64)
	i, err2 := strconv.ParseUint(name[17:33], 16, 64)
	if err1 != nil || err2 != nil || i == 0 {
		return snapFile{}, false
	}
	return snapFile{term: t, index: i, name: name}, true
}

// checkSnapshot validates a snapshot handed to SaveSnapshot or
// InstallSnapshot before anything is written.
func checkSnapshot(s *raft.Snapshot) error {
	switch {
	case s.Meta.Index == 0:
		return invalidf("snapshot at index 0")
	case len(s.Data) > MaxSnapshotBytes:
		return invalidf("snapshot %d/%d has %d bytes of data, more than the maximum %d",
			s.Meta.Term, s.Meta.Index, len(s.Data), int64(MaxSnapshotBytes))
	case len(s.Meta.ConfState.Voters)+len(s.Meta.ConfState.VotersOutgoing)+len(s.Meta.ConfState.Learners) > maxVoters:
		return invalidf("snapshot %d/%d has %d members (voters and learners), more than the maximum %d", s.Meta.Term, s.Meta.Index,
			len(s.Meta.ConfState.Voters)+len(s.Meta.ConfState.VotersOutgoing)+len(s.Meta.ConfState.Learners), maxVoters)
	}
	return nil
}

// snapHeader encodes everything of s before its data, data length included.
func (w *WAL) snapHeader(s *raft.Snapshot) []byte {
	cs := s.Meta.ConfState
	le := binary.LittleEndian
	b := make([]byte, 0, snapFixed+8*(len(cs.Voters)+len(cs.VotersOutgoing)+len(cs.Learners))+16)
	b = append(b, snapMagic...)
	b = le.AppendUint64(b, w.opts.ClusterID)
	b = le.AppendUint64(b, w.opts.NodeID)
	b = le.AppendUint64(b, s.Meta.Index)
	b = le.AppendUint64(b, s.Meta.Term)
	b = le.AppendUint32(b, uint32(len(cs.Voters)))
	var flags uint32
	if cs.AutoLeave {
		flags |= flagAutoLeave
	}
	b = le.AppendUint32(b, flags)
	for _, id := range cs.Voters {
		b = le.AppendUint64(b, id)
	}
	b = le.AppendUint32(b, uint32(len(cs.VotersOutgoing)))
	b = le.AppendUint32(b, uint32(len(cs.Learners)))
	for _, ids := range [][]uint64{cs.VotersOutgoing, cs.Learners} {
		for _, id := range ids {
			b = le.AppendUint64(b, id)
		}
	}
	return le.AppendUint64(b, uint64(len(s.Data)))
}

// writeSnapFile stores s durably under its final name and returns the
// file's CRC.
func (w *WAL) writeSnapFile(s *raft.Snapshot) (uint32, error) {
	dir := filepath.Join(w.dir, snapDirName)
	final := filepath.Join(dir, snapName(s.Meta.Term, s.Meta.Index))
	tmp := final + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, fmt.Errorf("wal: creating snapshot file: %w", err)
	}
	hdr := w.snapHeader(s)
	crc := crc32.Update(crc32.Update(0, castagnoli, hdr), castagnoli, s.Data)
	trailer := binary.LittleEndian.AppendUint32(nil, crc)
	err = writeAll(f, hdr, s.Data, trailer)
	if err == nil {
		err = w.hook("snap-written")
	}
	if err == nil {
		err = w.syncFile(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("wal: writing snapshot file %s: %w", tmp, err)
	}
	w.stats.SnapshotBytes += uint64(len(hdr) + len(s.Data) + len(trailer))
	if err := os.Rename(tmp, final); err != nil {
		return 0, fmt.Errorf("wal: renaming snapshot file: %w", err)
	}
	if err := w.syncDir(dir); err != nil {
		return 0, err
	}
	return crc, w.hook("snap-renamed")
}

func writeAll(wr io.Writer, bufs ...[]byte) error {
	for _, b := range bufs {
		if _, err := wr.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// readSnapFile loads and checks the snapshot file that marker m names.
func (w *WAL) readSnapFile(m marker) (*raft.Snapshot, error) {
	path := filepath.Join(w.dir, snapDirName, snapName(m.term, m.index))
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &CorruptError{File: path, Offset: -1, Reason: fmt.Sprintf(
			"the log records snapshot %d/%d but its file is missing (deleted by hand?)", m.term, m.index)}
	}
	if err != nil {
		return nil, fmt.Errorf("wal: opening snapshot: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("wal: opening snapshot: %w", err)
	}
	s, err := w.decodeSnap(bufio.NewReaderSize(f, int(min(st.Size(), 1<<20))), st.Size(), m)
	if ce, ok := err.(*CorruptError); ok {
		ce.File = path
	}
	return s, err
}

// decodeSnap reads a snapshot file of size bytes from r and checks it
// against marker m. Allocation is bounded by size.
func (w *WAL) decodeSnap(r io.Reader, size int64, m marker) (*raft.Snapshot, error) {
	bad := func(off int64, format string, args ...any) error {
		return &CorruptError{Offset: off, Reason: fmt.Sprintf(format, args...)}
	}
	if size < snapOverhead {
		return nil, bad(0, "snapshot file of %d bytes is shorter than its %d-byte frame", size, snapOverhead)
	}
	crc := crc32.New(castagnoli)
	tr := io.TeeReader(r, crc)
	var h [snapFixed]byte
	if _, err := io.ReadFull(tr, h[:]); err != nil {
		return nil, fmt.Errorf("wal: reading snapshot: %w", err)
	}
	le := binary.LittleEndian
	v1 := string(h[:8]) == snapMagicV1
	if !v1 && string(h[:8]) != snapMagic {
		return nil, bad(0, "bad magic %q", h[:8])
	}
	if c, n := le.Uint64(h[8:]), le.Uint64(h[16:]); c != w.opts.ClusterID || n != w.opts.NodeID {
		return nil, bad(8, "snapshot of cluster %d node %d in the directory of cluster %d node %d", c, n, w.opts.ClusterID, w.opts.NodeID)
	}
	idx, term := le.Uint64(h[24:]), le.Uint64(h[32:])
	if idx != m.index || term != m.term {
		return nil, bad(24, "file holds snapshot %d/%d, the log expects %d/%d", term, idx, m.term, m.index)
	}
	nv, flags := int64(le.Uint32(h[40:])), le.Uint32(h[44:])
	if nv > maxVoters || snapOverhead+8*nv > size || flags&^flagAutoLeave != 0 || v1 && flags != 0 {
		return nil, bad(40, "voter count %d or flags %#x do not fit a %d-byte file", nv, flags, size)
	}
	s := &raft.Snapshot{Meta: raft.SnapshotMeta{Index: idx, Term: term}}
	cs := &s.Meta.ConfState
	cs.AutoLeave = flags&flagAutoLeave != 0
	ids := func(n int64) ([]uint64, error) {
		if n == 0 {
			return nil, nil
		}
		b := make([]byte, 8*n)
		if _, err := io.ReadFull(tr, b); err != nil {
			return nil, fmt.Errorf("wal: reading snapshot: %w", err)
		}
		out := make([]uint64, n)
		for i := range out {
			out[i] = le.Uint64(b[8*i:])
		}
		return out, nil
	}
	var err error
	if cs.Voters, err = ids(nv); err != nil {
		return nil, err
	}
	frame := snapOverhead + 8*nv // bytes that are not data
	if !v1 {
		var counts [8]byte
		if _, err := io.ReadFull(tr, counts[:]); err != nil {
			return nil, fmt.Errorf("wal: reading snapshot: %w", err)
		}
		no, nl := int64(le.Uint32(counts[:])), int64(le.Uint32(counts[4:]))
		if no+nl+nv > maxVoters || frame+8+8*(no+nl) > size {
			return nil, bad(snapFixed+8*nv, "outgoing voter count %d and learner count %d do not fit a %d-byte file", no, nl, size)
		}
		if cs.VotersOutgoing, err = ids(no); err != nil {
			return nil, err
		}
		if cs.Learners, err = ids(nl); err != nil {
			return nil, err
		}
		frame += 8 + 8*(no+nl)
	}
	var lb [8]byte
	if _, err := io.ReadFull(tr, lb[:]); err != nil {
		return nil, fmt.Errorf("wal: reading snapshot: %w", err)
	}
	dlen := le.Uint64(lb[:])
	if want := uint64(size - frame); dlen != want || dlen > MaxSnapshotBytes {
		return nil, bad(frame-12, "data length %d, the file has room for %d", dlen, want)
	}
	s.Data = make([]byte, dlen)
	if _, err := io.ReadFull(tr, s.Data); err != nil {
		return nil, fmt.Errorf("wal: reading snapshot: %w", err)
	}
	sum := crc.Sum32()
	var t [4]byte
	if _, err := io.ReadFull(r, t[:]); err != nil {
		return nil, fmt.Errorf("wal: reading snapshot: %w", err)
	}
	if got := le.Uint32(t[:]); got != sum {
		return nil, bad(size-4, "checksum mismatch (stored %#x, computed %#x)", got, sum)
	}
	if sum != m.crc {
		return nil, bad(size-4, "checksum %#x differs from %#x recorded in the log (a different snapshot under the same name)", sum, m.crc)
	}
	return s, nil
}

// listSnaps returns the snapshot files, newest index first, and the names
// of leftover temporary files.
func listSnaps(dir string) ([]snapFile, []string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("wal: listing snapshots: %w", err)
	}
	var snaps []snapFile
	var tmps []string
	for _, de := range des {
		if sf, ok := parseSnapName(de.Name()); ok {
			snaps = append(snaps, sf)
		} else if strings.HasSuffix(de.Name(), tmpSuffix) {
			tmps = append(tmps, de.Name())
		}
	}
	slices.SortFunc(snaps, func(a, b snapFile) int {
		if a.index != b.index {
			return -cmpU64(a.index, b.index)
		}
		return -cmpU64(a.term, b.term)
	})
	return snaps, tmps, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// pruneSnaps deletes snapshot files that are not needed: temporary files,
// files newer than the current snapshot cur (written by a SaveSnapshot or
// InstallSnapshot that crashed before its marker was durable), and all but
// the newest KeepSnapshots files at or before cur (cur included). Errors are
// logged, not returned: a leftover file costs only disk space.
func (w *WAL) pruneSnaps(cur marker) {
	dir := filepath.Join(w.dir, snapDirName)
	snaps, tmps, err := listSnaps(dir)
	if err != nil {
		w.log.Warn("wal: pruning snapshots", "dir", dir, "err", err)
		return
	}
	doomed := tmps
	kept := 0
	for _, sf := range snaps {
		current := sf.index == cur.index && sf.term == cur.term
		switch {
		case current:
			kept++
		case sf.index >= cur.index || kept >= w.opts.KeepSnapshots:
			doomed = append(doomed, sf.name)
		default:
			kept++
		}
	}
	if len(doomed) == 0 {
		return
	}
	for _, name := range doomed {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			w.log.Warn("wal: removing snapshot file", "file", name, "err", err)
			continue
		}
		w.stats.SnapshotFilesRemoved++
	}
	if err := w.syncDir(dir); err != nil {
		w.log.Warn("wal: syncing the snapshot directory", "dir", dir, "err", err)
	}
}
