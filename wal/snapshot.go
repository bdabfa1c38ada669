package wal

import (
	"os"
	"path/filepath"

	"github.com/flotilla-dev/flotilla/raft"
)

// SaveSnapshot stores a snapshot the host took of its own state machine
// (raft.Node.Compact) and compacts the log up to s.Meta.Index. The snapshot
// file is written atomically (temporary file, fsync, rename, directory
// fsync); then a snapshot marker is appended to the log and fsynced. Only
// then are segments wholly covered by s (every entry at or before
// s.Meta.Index) deleted, oldest first, and old snapshot files pruned. The
// entries after s stay.
//
// s must be newer than the stored snapshot and its index must be a stored
// entry with term s.Meta.Term; otherwise SaveSnapshot returns an error
// wrapping ErrInvalid and writes nothing. s is not retained.
func (w *WAL) SaveSnapshot(s raft.Snapshot) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	if err := w.checkNewer(&s); err != nil {
		return err
	}
	i := s.Meta.Index
	if i > w.terms.last {
		return invalidf("snapshot index %d is beyond the last stored entry %d (a snapshot from the leader goes to InstallSnapshot)", i, w.terms.last)
	}
	if t, _ := w.terms.term(i); t != s.Meta.Term {
		return invalidf("snapshot %d/%d does not match the stored entry %d with term %d", s.Meta.Term, i, i, t)
	}
	m, err := w.storeSnapshot(&s, 0)
	if err != nil {
		return err
	}
	w.terms.compact(i, s.Meta.Term)
	w.stats.SnapshotsSaved++
	w.deleteSegments(func(sg segment) bool { return sg.maxIndex <= i })
	w.pruneSnaps(m)
	return nil
}

// InstallSnapshot stores a snapshot received from the leader (Ready.Snapshot)
// and discards every stored entry: the log now starts after s.Meta.Index.
// It is stored like SaveSnapshot's; then every segment but the open one is
// deleted.
//
// s must be newer than the stored snapshot and not before the stored commit
// index; otherwise InstallSnapshot returns an error wrapping ErrInvalid and
// writes nothing. s is not retained.
func (w *WAL) InstallSnapshot(s raft.Snapshot) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	if err := w.checkNewer(&s); err != nil {
		return err
	}
	if s.Meta.Index < w.hs.Commit {
		return invalidf("snapshot index %d is before the stored commit index %d", s.Meta.Index, w.hs.Commit)
	}
	m, err := w.storeSnapshot(&s, markerInstall)
	if err != nil {
		return err
	}
	w.terms.reset(s.Meta.Index, s.Meta.Term)
	w.stats.SnapshotsInstalled++
	w.deleteSegments(func(segment) bool { return true })
	w.pruneSnaps(m)
	return nil
}

// checkNewer validates a snapshot and requires it to be newer than the
// stored one (an older or equal one would reuse or rewind a file name the
// log already points at).
func (w *WAL) checkNewer(s *raft.Snapshot) error {
	if err := checkSnapshot(s); err != nil {
		return err
	}
	if s.Meta.Index <= w.snap.index {
		return invalidf("snapshot %d/%d is not newer than the stored snapshot %d/%d",
			s.Meta.Term, s.Meta.Index, w.snap.term, w.snap.index)
	}
	return nil
}

// storeSnapshot writes s's file, then appends and fsyncs its marker. On
// success the marker is current; every failure is sticky.
func (w *WAL) storeSnapshot(s *raft.Snapshot, flags uint32) (marker, error) {
	crc, err := w.writeSnapFile(s)
	if err != nil {
		return marker{}, w.fail(err)
	}
	m := marker{index: s.Meta.Index, term: s.Meta.Term, crc: crc, flags: flags}
	if err := w.appendRecords(func(e *encoder) { e.marker(m) }, false); err != nil {
		return marker{}, err
	}
	if err := w.fail(w.hook("marker-written")); err != nil {
		return marker{}, err
	}
	if err := w.fail(w.syncSegment()); err != nil {
		return marker{}, err
	}
	m.flags = 0
	w.snap = m
	return m, w.fail(w.hook("marker-synced"))
}

// deleteSegments deletes the oldest segments while covered says they hold
// nothing the log needs, never the open one. Each unlink is made durable
// (directory fsync) before the next, so a crash leaves a suffix of the
// segments, never a gap. A failure stops the deletion and is logged: the
// snapshot is stored, the leftover segments only cost disk space and are
// retried after the next snapshot.
func (w *WAL) deleteSegments(covered func(segment) bool) {
	for len(w.segs) > 1 && covered(w.segs[0]) {
		path := filepath.Join(w.dir, w.segs[0].name)
		if err := os.Remove(path); err != nil {
			w.log.Warn("wal: deleting a compacted segment", "file", path, "err", err)
			return
		}
		w.segs = w.segs[1:]
		w.stats.SegmentsDeleted++
		if err := w.syncDir(w.dir); err != nil {
			w.log.Warn("wal: syncing the directory after deleting a segment", "dir", w.dir, "err", err)
			return
		}
		if err := w.hook("segment-deleted"); err != nil {
			return
		}
	}
}
