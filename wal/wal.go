package wal

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/flotilla-dev/flotilla/raft"
)

// Options configures a WAL. The zero value of every optional field picks the
// documented default.
type Options struct {
	// ClusterID and NodeID identify the member the directory belongs to.
	// They are recorded when the directory is created (in the first record
	// of every segment and in every snapshot file); Open with other values
	// fails with an error wrapping ErrClusterMismatch. NodeID must be
	// non-zero.
	ClusterID, NodeID uint64
	// SegmentBytes is the size after which the log rolls to a new segment
	// file. A segment may exceed it by one Save's worth of records. Default
	// 64 MiB.
	SegmentBytes int64
	// NoPreallocate stops the WAL from allocating each segment's
	// SegmentBytes when it creates the segment (and when it opens the
	// newest one). By default it does, with fallocate on Linux, so that
	// appends overwrite allocated zeros instead of growing the file, and an
	// fdatasync after a small write usually flushes only data: no new size
	// or block to commit to the filesystem journal (only the first write
	// into each block converts an unwritten extent). On ext4 that makes a
	// sync of a small write about a quarter cheaper, and syncs of several
	// WALs on one disk stop queueing behind each other's journal commits. The cost is disk
	// space: every segment takes SegmentBytes from its creation. Either
	// way Open reads both shapes (zeros after the last record are free
	// space, not damage).
	NoPreallocate bool
	// NoSync skips every fsync (segments, snapshot files, directories).
	// UNSAFE: a machine crash or power loss may then lose or tear
	// acknowledged writes, which breaks Raft's safety. For tests and
	// benchmarks only.
	NoSync bool
	// OnSync, if not nil, is called after every fsync (of a segment, a
	// snapshot file or a directory) with its duration, for example to feed a
	// latency histogram. It is called with the WAL's lock held and must not
	// call back into the WAL.
	OnSync func(d time.Duration)
	// KeepSnapshots is how many snapshot files are kept: the current one and
	// the newest older ones. Older files are deleted after each snapshot.
	// Default 2.
	KeepSnapshots int
	// Logger receives notices about recovery (a torn tail cut off, leftover
	// files removed) and cleanup failures. Default slog.Default().
	Logger *slog.Logger
}

// DefaultSegmentBytes is the default of Options.SegmentBytes.
const DefaultSegmentBytes = 64 << 20

func (o Options) withDefaults() (Options, error) {
	if o.NodeID == raft.None {
		return o, invalidf("NodeID must be non-zero")
	}
	if o.SegmentBytes < 0 || o.KeepSnapshots < 0 {
		return o, invalidf("SegmentBytes (%d) and KeepSnapshots (%d) must not be negative", o.SegmentBytes, o.KeepSnapshots)
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.KeepSnapshots == 0 {
		o.KeepSnapshots = 2
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// Stats are a WAL's counters since Open. Bytes and counts cover this process
// only; Segments is the current number of segment files.
type Stats struct {
	// Records and Entries count records (of every type) and entry records
	// appended to segments.
	Records, Entries uint64
	// Bytes and Writes count bytes written to segment files and the write
	// calls that carried them: one per Save that writes anything (a Save
	// that rolls writes the new segment's meta record and its batch in one
	// call), one per snapshot marker, one per segment created empty.
	Bytes, Writes uint64
	// Fsyncs counts syncs of files (segments, with fdatasync where there
	// is one, and snapshot files, with fsync);
	// DirSyncs counts fsyncs of directories. A Save with sync set costs
	// exactly one file fsync; rolling to a new segment costs one more
	// directory fsync (and a file fsync for the old segment if it held
	// unsynced writes).
	Fsyncs, DirSyncs uint64
	// SyncTime is the total time spent in fsyncs of both kinds.
	SyncTime time.Duration
	// SnapshotsSaved and SnapshotsInstalled count successful SaveSnapshot
	// and InstallSnapshot calls; SnapshotBytes the bytes of snapshot files
	// written.
	SnapshotsSaved, SnapshotsInstalled, SnapshotBytes uint64
	// Segments is the number of segment files now; SegmentsCreated and
	// SegmentsDeleted count the files this process made and removed.
	Segments                         int
	SegmentsCreated, SegmentsDeleted uint64
	// SnapshotFilesRemoved counts snapshot and temporary files pruned.
	SnapshotFilesRemoved uint64
	// TornBytes is how many bytes Open cut from a torn tail.
	TornBytes int64
	// Failed reports that an I/O operation failed and the WAL refuses work.
	Failed bool
}

// segFile is the open segment: *os.File, or a fault-injecting wrapper in
// tests.
type segFile interface {
	io.WriterAt
	Sync() error
	Close() error
}

// WAL is a write-ahead log for one Raft member: entries, hard states and
// snapshot markers appended to segment files, snapshots in files of their
// own. Its methods are safe for concurrent use; they are serialized.
type WAL struct {
	mu   sync.Mutex
	dir  string
	opts Options
	log  *slog.Logger
	// lock holds the directory's flock until Close.
	lock *os.File

	// segs lists the segment files, oldest first; the last one is open for
	// appending as f, with size bytes, dirty when written since its fsync.
	segs  []segment
	f     segFile
	size  int64
	dirty bool
	// durable is the offset up to which the open segment is known durable
	// (0 after Open until the first sync); marked is the value of the last
	// sync record written to it this process.
	durable, marked int64

	// hs and snap are the stored hard state and current snapshot marker
	// (flags cleared); terms tracks the stored entries after snap.
	hs    raft.HardState
	snap  marker
	terms termLog

	enc       encoder
	recovered raft.PersistedState
	stats     Stats
	// err is the first I/O failure; once set every method refuses work.
	err    error
	closed bool

	// crashHook, when set by a test, is called at named points of
	// multi-step operations; an error return aborts the operation there.
	crashHook func(point string) error
	// wrapFile, when set by a test, wraps each segment file opened.
	wrapFile func(segFile) segFile
}

// Recovered returns what Open found on disk: the newest hard state, the
// newest snapshot with its data (nil if none), and the entries after the
// snapshot, contiguous. It does not change as the WAL is written. The
// caller must not modify the returned slices.
func (w *WAL) Recovered() raft.PersistedState {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.recovered
}

// Stats returns the WAL's counters.
func (w *WAL) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.stats
	s.Segments = len(w.segs)
	return s
}

// Save appends ents and then hs (if not empty and changed) to the log, in
// one write call. An entry at an index already stored replaces it and every
// entry after it (a conflicting suffix is truncated). If sync is set, Save
// ends with exactly one fsync of the segment, covering this and every
// earlier unsynced write (group commit); with nothing to write, it syncs
// only if earlier writes are unsynced.
//
// Save rejects, with an error wrapping ErrInvalid and without writing,
// entries that are not contiguous, that start at or before the snapshot,
// leave a gap after the last stored index or replace a committed entry,
// entries larger than MaxEntryBytes, and a hard state whose commit index is
// beyond the log. The slices are not retained.
func (w *WAL) Save(hs raft.HardState, ents []raft.Entry, sync bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	if err := w.checkSave(hs, ents); err != nil {
		return err
	}
	writeHS := !hs.IsEmpty() && hs != w.hs
	if len(ents) == 0 && !writeHS {
		if sync && w.dirty {
			return w.fail(w.syncSegment())
		}
		return nil
	}
	err := w.appendRecords(func(e *encoder) {
		for i := range ents {
			e.entry(&ents[i])
		}
		if writeHS {
			e.hardState(hs)
		}
	}, sync)
	if err != nil {
		return err
	}
	if n := len(ents); n > 0 {
		w.terms.append(ents)
		cur := &w.segs[len(w.segs)-1]
		cur.maxIndex = max(cur.maxIndex, ents[n-1].Index)
		w.stats.Entries += uint64(n)
	}
	if writeHS {
		w.hs = hs
	}
	return nil
}

// checkSave validates Save's arguments against the stored log.
func (w *WAL) checkSave(hs raft.HardState, ents []raft.Entry) error {
	last := w.terms.last
	for i := range ents {
		e := &ents[i]
		if len(e.Data) > MaxEntryBytes {
			return invalidf("entry %d has %d bytes of data, more than the maximum %d", e.Index, len(e.Data), MaxEntryBytes)
		}
		if i > 0 && e.Index != ents[i-1].Index+1 {
			return invalidf("entries are not contiguous: %d follows %d", e.Index, ents[i-1].Index)
		}
	}
	if len(ents) > 0 {
		first := ents[0].Index
		switch {
		case first <= w.terms.snapIndex:
			return invalidf("entry %d is at or before the snapshot at %d", first, w.terms.snapIndex)
		case first > last+1:
			return invalidf("entry %d leaves a gap after the last stored index %d", first, last)
		case first <= w.hs.Commit:
			return invalidf("entry %d would replace a committed entry (stored commit index %d)", first, w.hs.Commit)
		}
		last = ents[len(ents)-1].Index
	}
	if !hs.IsEmpty() && hs.Commit > last {
		return invalidf("hard state commit index %d is beyond the last index %d", hs.Commit, last)
	}
	return nil
}

// Close syncs unsynced writes and closes the segment file. Every method but
// Recovered and Stats returns ErrClosed afterwards.
func (w *WAL) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	w.closed = true
	var err error
	if w.err == nil && w.dirty {
		err = w.fail(w.syncSegment())
	}
	if w.f != nil {
		if cerr := w.f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("wal: closing segment: %w", cerr)
		}
		w.f = nil
	}
	w.lock.Close()
	return err
}

// usable returns the error a method must return before doing anything.
func (w *WAL) usable() error {
	if w.closed {
		return ErrClosed
	}
	if w.err != nil {
		return fmt.Errorf("%w: %w", ErrFailed, w.err)
	}
	return nil
}

// fail records err, if any, as the WAL's first I/O failure and returns it.
func (w *WAL) fail(err error) error {
	if err != nil && w.err == nil {
		w.err = err
		w.stats.Failed = true
		w.log.Error("wal: I/O failure; refusing further writes", "dir", w.dir, "err", err)
	}
	return err
}

// hook runs the test crash hook at point.
func (w *WAL) hook(point string) error {
	if w.crashHook == nil {
		return nil
	}
	if err := w.crashHook(point); err != nil {
		return fmt.Errorf("wal: injected crash at %s: %w", point, err)
	}
	return nil
}
