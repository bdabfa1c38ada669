package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/flotilla-dev/flotilla/raft"
)

// Open opens the WAL in dir, creating dir (and a first segment recording
// opts.ClusterID and opts.NodeID) if it holds no WAL yet, and recovers the
// stored state; see Recovered.
//
// Recovery replays the segments in order (later records win; an entry at an
// index already seen truncates the entries from there on) and loads the
// snapshot file the newest snapshot marker names. Zeros after the records
// of the newest segment are free space. A torn tail is what a crash during
// the last writes leaves at the end of the newest segment: a partial or
// garbage record with no valid record after it, or a lost sector followed
// by records that no later sync record vouches for (see docs/wal.md); it is
// cut off (logged) and Open succeeds. Any other damage makes Open fail with
// a *CorruptError naming the file and offset; nothing is skipped. A
// directory created for another cluster or node fails with an error
// wrapping ErrClusterMismatch, and a directory another WAL holds open with
// one wrapping ErrLocked.
// Leftover temporary files and snapshot files no marker made current are
// removed, but only after everything else checked out.
func Open(dir string, opts Options) (*WAL, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	w := &WAL{dir: dir, opts: o, log: o.Logger}
	created, snapCreated, err := makeDirs(dir)
	if err != nil {
		return nil, err
	}
	if w.lock, err = lockDir(dir); err != nil {
		return nil, err
	}
	if err := w.open(created, snapCreated); err != nil {
		if w.f != nil {
			w.f.Close()
		}
		w.lock.Close()
		return nil, err
	}
	return w, nil
}

// lockName is the lock file's name in the directory.
const lockName = "LOCK"

func (w *WAL) open(created, snapCreated bool) error {
	segs, tmps, err := listSegments(w.dir)
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		return w.create(created, tmps)
	}
	if snapCreated {
		// The snapshot directory's entry must be durable before a snapshot
		// file in it is.
		if err := w.syncDir(w.dir); err != nil {
			return err
		}
	}
	return w.recover(segs, tmps)
}

// makeDirs creates dir and its snapshot directory and reports whether each
// was new.
func makeDirs(dir string) (dirNew, snapNew bool, err error) {
	_, err = os.Stat(dir)
	dirNew = errors.Is(err, os.ErrNotExist)
	_, err = os.Stat(filepath.Join(dir, snapDirName))
	snapNew = errors.Is(err, os.ErrNotExist)
	if err := os.MkdirAll(filepath.Join(dir, snapDirName), 0o755); err != nil {
		return false, false, fmt.Errorf("wal: creating the directory: %w", err)
	}
	return dirNew, snapNew, nil
}

// listSegments returns the segment files of dir in sequence order and the
// names of leftover temporary segment files.
func listSegments(dir string) ([]segment, []string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("wal: listing segments: %w", err)
	}
	var segs []segment
	var tmps []string
	for _, de := range des {
		name := de.Name()
		if seq, ok := parseSegmentName(name); ok {
			segs = append(segs, segment{seq: seq, name: name})
		} else if strings.HasSuffix(name, segSuffix+tmpSuffix) {
			tmps = append(tmps, name)
		}
	}
	slices.SortFunc(segs, func(a, b segment) int { return cmpU64(a.seq, b.seq) })
	for i := 1; i < len(segs); i++ {
		if segs[i].seq != segs[i-1].seq+1 {
			return nil, nil, &CorruptError{File: dir, Offset: -1, Reason: fmt.Sprintf(
				"segments %s and %s are not consecutive (a segment file is missing or extra)", segs[i-1].name, segs[i].name)}
		}
	}
	return segs, tmps, nil
}

// create starts a new WAL in an empty directory.
func (w *WAL) create(created bool, tmps []string) error {
	snaps, _, err := listSnaps(filepath.Join(w.dir, snapDirName))
	if err != nil {
		return err
	}
	if len(snaps) > 0 {
		return &CorruptError{File: w.dir, Offset: -1, Reason: fmt.Sprintf(
			"holds %d snapshot files but no log segment: the log is lost; refusing to start empty", len(snaps))}
	}
	w.removeTemps(tmps)
	if err := w.newSegment(1, nil); err != nil {
		return err
	}
	if created {
		if err := w.syncDir(filepath.Dir(filepath.Clean(w.dir))); err != nil {
			return err
		}
	}
	return nil
}

// recover replays segs, checks the snapshot, then repairs a torn tail and
// removes leftovers, and opens the newest segment for appending.
func (w *WAL) recover(segs []segment, tmps []string) error {
	r := replayer{w: w}
	var torn *segScan
	for i := range segs {
		path := filepath.Join(w.dir, segs[i].name)
		r.seg, r.first = &segs[i], i == 0
		sc, err := scanSegment(path, segs[i].seq, r.apply)
		if err != nil {
			return err
		}
		if sc.end == 0 {
			reason := "empty segment: no meta record"
			if sc.bad != nil {
				reason = fmt.Sprintf("meta record: %v", sc.bad)
			}
			return &CorruptError{File: path, Offset: 0, Reason: reason}
		}
		if sc.bad == nil && sc.end < sc.size && i < len(segs)-1 {
			return &CorruptError{File: path, Offset: sc.end, Reason: fmt.Sprintf(
				"only zeros from here to the end of the file (%d bytes), in a segment that is not the newest (only the newest has free space): records lost", sc.size-sc.end)}
		}
		if sc.bad != nil {
			if i < len(segs)-1 {
				return &CorruptError{File: path, Offset: sc.end, Reason: fmt.Sprintf(
					"%v, in a segment that is not the newest (only the newest may have a torn tail)", sc.bad)}
			}
			if sc.impossible {
				return &CorruptError{File: path, Offset: sc.end, Reason: fmt.Sprintf(
					"%v, in a header whose checksum holds", sc.bad)}
			}
			tail, err := scanTail(path, segs[i].seq, sc.end, sc.dataEnd, sc.size)
			if err != nil {
				return err
			}
			switch {
			case tail.syncAt >= 0:
				return &CorruptError{File: path, Offset: sc.end, Reason: fmt.Sprintf(
					"%v, and the write at byte %d records that the segment was durable up to byte %d: damage to synced data, not a torn tail",
					sc.bad, tail.syncAt, tail.syncedTo)}
			case tail.valid >= 0 && !tail.lost:
				return &CorruptError{File: path, Offset: sc.end, Reason: fmt.Sprintf(
					"%v, and a valid record follows at byte %d: damage inside the log, not a torn tail", sc.bad, tail.valid)}
			case tail.valid >= 0:
				// A lost sector, then records of the same unsynced writes
				// that reached the disk: nothing after the last sync.
				sc.bad = fmt.Errorf("%w (a lost sector; the valid records after it, from byte %d, were never synced)", sc.bad, tail.valid)
			}
			torn = &sc
		}
		w.size = sc.end
	}
	st, err := r.finish()
	if err != nil {
		return err
	}
	if r.snap.index > 0 {
		if st.Snapshot, err = w.readSnapFile(r.snap); err != nil {
			return err
		}
	}
	// Everything checked out: only now touch the disk.
	w.segs, w.hs, w.snap, w.recovered = segs, r.hs, r.snap, st
	w.terms.reset(r.snap.index, r.snap.term)
	w.terms.append(st.Entries)
	return w.openTail(torn, tmps)
}

// openTail cuts a torn tail off the newest segment, removes leftovers and
// opens the segment for writing at its end, preallocated (see
// Options.NoPreallocate).
func (w *WAL) openTail(torn *segScan, tmps []string) error {
	cur := w.segs[len(w.segs)-1]
	path := filepath.Join(w.dir, cur.name)
	if torn != nil {
		// Truncating, then preallocating again, turns the damaged bytes into
		// zeros: free space that the next writes overwrite.
		if err := os.Truncate(path, torn.end); err != nil {
			return fmt.Errorf("wal: cutting the torn tail of %s: %w", path, err)
		}
		w.stats.TornBytes = torn.dataEnd - torn.end
		w.log.Warn("wal: cut a torn tail (a write interrupted by a crash)", "file", path,
			"offset", torn.end, "bytes", torn.dataEnd-torn.end, "reason", torn.bad.Error())
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("wal: opening segment for writing: %w", err)
	}
	w.f = f
	if err := w.preallocate(f, path); err != nil {
		return err
	}
	if w.wrapFile != nil {
		w.f = w.wrapFile(f)
	}
	// What Open recovered may be in the page cache only (the process was
	// killed before its sync): sync it, since the caller treats it as
	// stable, and so that the first sync record covers it. A cut tail
	// changed the file's size: a full fsync.
	sync := datasync
	if torn != nil {
		sync = segFile.Sync
	}
	if err := w.syncWith(w.f, sync); err != nil {
		return fmt.Errorf("wal: syncing segment %s: %w", path, err)
	}
	w.markDurable()
	w.removeTemps(tmps)
	w.pruneSnaps(w.snap)
	return nil
}

// removeTemps removes leftover temporary segment files (a crash while a
// segment was created) and logs it.
func (w *WAL) removeTemps(tmps []string) {
	for _, name := range tmps {
		path := filepath.Join(w.dir, name)
		if err := os.Remove(path); err != nil {
			w.log.Warn("wal: removing a leftover temporary file", "file", path, "err", err)
			continue
		}
		w.log.Info("wal: removed a leftover temporary file", "file", path)
	}
	if len(tmps) > 0 {
		if err := w.syncDir(w.dir); err != nil {
			w.log.Warn("wal: syncing the directory", "dir", w.dir, "err", err)
		}
	}
}

// replayer rebuilds the stored state from records in log order.
type replayer struct {
	w *WAL
	// seg is the segment being replayed; first is set for the oldest one.
	seg   *segment
	first bool
	hs    raft.HardState
	// snap is the current snapshot marker, flags cleared.
	snap marker
	// ents are the entries replayed so far, contiguous, all after snap.
	// After segments were deleted they may start later than snap.index+1
	// until a later marker covers the gap; finish checks.
	ents []raft.Entry
}

// apply replays one record at offset off of r.seg. Its error becomes a
// *CorruptError at that offset (an ErrClusterMismatch error passes as is).
func (r *replayer) apply(rec record, off int64) error {
	if off == 0 {
		if rec.typ != recMeta {
			return fmt.Errorf("the first record of a segment must be a meta record")
		}
		m, err := decodeMeta(rec.payload)
		if err != nil {
			return err
		}
		return r.meta(m)
	}
	switch rec.typ {
	case recEntry:
		e, err := decodeEntry(rec.payload)
		if err != nil {
			return err
		}
		if len(e.Data) > 0 {
			e.Data = slices.Clone(e.Data)
		} else {
			e.Data = nil
		}
		return r.entry(e)
	case recHardState:
		hs, err := decodeHardState(rec.payload)
		r.hs = hs
		return err
	case recSnapshot:
		m, err := decodeMarker(rec.payload)
		if err != nil {
			return err
		}
		return r.marker(m)
	case recSync:
		_, err := decodeSync(rec.payload, off)
		return err
	}
	return fmt.Errorf("%s record after the start of the segment", rec.typ)
}

func (r *replayer) meta(m meta) error {
	o := r.w.opts
	path := filepath.Join(r.w.dir, r.seg.name)
	if m.clusterID != o.ClusterID || m.nodeID != o.NodeID {
		return fmt.Errorf("%w: directory %s was created for cluster %d node %d (segment %s), but Open was asked for cluster %d node %d; check the data directory and the IDs",
			ErrClusterMismatch, r.w.dir, m.clusterID, m.nodeID, filepath.Base(path), o.ClusterID, o.NodeID)
	}
	if m.seq != r.seg.seq {
		return fmt.Errorf("meta names segment %d but the file name says %d (a renamed or copied file)", m.seq, r.seg.seq)
	}
	r.seg.version = m.version
	if r.first {
		r.hs, r.snap = m.hs, m.snap
		return nil
	}
	if m.hs != r.hs || m.snap != r.snap {
		return fmt.Errorf("segment starts with hard state %+v and snapshot %d/%d, but the segments before end with %+v and %d/%d (records lost)",
			m.hs, m.snap.term, m.snap.index, r.hs, r.snap.term, r.snap.index)
	}
	return nil
}

func (r *replayer) entry(e raft.Entry) error {
	if e.Index <= r.snap.index {
		return fmt.Errorf("entry %d is at or before the snapshot at %d", e.Index, r.snap.index)
	}
	if n := len(r.ents); n > 0 {
		first, last := r.ents[0].Index, r.ents[n-1].Index
		switch {
		case e.Index > last+1:
			return fmt.Errorf("entry %d leaves a gap after entry %d", e.Index, last)
		case e.Index < first:
			r.ents = r.ents[:0]
		default:
			r.ents = r.ents[:e.Index-first]
		}
	}
	r.ents = append(r.ents, e)
	r.seg.maxIndex = max(r.seg.maxIndex, e.Index)
	return nil
}

func (r *replayer) marker(m marker) error {
	if m.index <= r.snap.index {
		return fmt.Errorf("snapshot marker %d is not after the current snapshot %d", m.index, r.snap.index)
	}
	if m.flags&markerInstall != 0 {
		r.ents = nil
	} else if n := len(r.ents); n > 0 {
		first, last := r.ents[0].Index, r.ents[n-1].Index
		if m.index > last {
			return fmt.Errorf("snapshot marker %d compacts beyond the last entry %d", m.index, last)
		}
		if m.index >= first {
			if t := r.ents[m.index-first].Term; t != m.term {
				return fmt.Errorf("snapshot marker %d/%d does not match entry %d with term %d", m.term, m.index, m.index, t)
			}
			r.ents = r.ents[m.index-first+1:]
		}
	}
	m.flags = 0
	r.snap = m
	return nil
}

// finish checks the replayed state as a whole and returns it.
func (r *replayer) finish() (raft.PersistedState, error) {
	bad := func(format string, args ...any) error {
		return &CorruptError{File: r.w.dir, Offset: -1, Reason: fmt.Sprintf(format, args...)}
	}
	last := r.snap.index
	if n := len(r.ents); n > 0 {
		if r.ents[0].Index != r.snap.index+1 {
			return raft.PersistedState{}, bad("the entries start at %d but the snapshot ends at %d (a segment is missing)",
				r.ents[0].Index, r.snap.index)
		}
		last = r.ents[n-1].Index
	}
	if r.hs.Commit > last {
		return raft.PersistedState{}, bad("the hard state's commit index %d is beyond the last index %d", r.hs.Commit, last)
	}
	return raft.PersistedState{HardState: r.hs, Entries: slices.Clip(r.ents)}, nil
}
