package wal

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// maxKeptBuf is the largest encode buffer kept between writes; a bigger one
// (from a huge batch) is dropped so it does not pin memory.
const maxKeptBuf = 4 << 20

// appendRecords encodes records with fill and writes them to the open
// segment in one write call, first rolling to a new segment if the open one
// has reached SegmentBytes. If the segment was synced since the last sync
// record, the write starts with one (see recSync). If sync is set the write
// ends with a sync. Every I/O error is sticky (see fail).
func (w *WAL) appendRecords(fill func(*encoder), sync bool) error {
	if w.size >= w.opts.SegmentBytes {
		return w.fail(w.roll(fill))
	}
	w.enc = encoder{buf: w.enc.buf[:0], seq: w.segs[len(w.segs)-1].seq, base: w.size}
	mark := w.durable > w.marked && w.segs[len(w.segs)-1].version >= 2
	if mark {
		w.enc.syncMark(w.durable)
	}
	fill(&w.enc)
	err := w.write(w.enc.buf)
	if err == nil && mark {
		w.marked = w.durable
	}
	if err == nil && sync {
		err = w.syncSegment()
	}
	w.releaseBuf()
	return w.fail(err)
}

func (w *WAL) releaseBuf() {
	if cap(w.enc.buf) > maxKeptBuf {
		w.enc.buf = nil
	}
}

// write writes buf, encoded by w.enc, at the end of the open segment's
// records (inside its preallocated space, or growing the file).
func (w *WAL) write(buf []byte) error {
	n, err := w.f.WriteAt(buf, w.size)
	w.size += int64(n)
	w.stats.Bytes += uint64(n)
	w.stats.Writes++
	if n > 0 {
		w.dirty = true
	}
	if err == nil && n < len(buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("wal: writing segment %s: %w", w.segs[len(w.segs)-1].name, err)
	}
	w.stats.Records += uint64(w.enc.n)
	return nil
}

// roll closes the open segment, after syncing it if it holds unsynced
// writes (a newer segment must never be durable ahead of an older one), and
// starts the next segment with the records fill adds.
//
// The old segment is first cut to its records: only the newest segment may
// hold free space, because Open reads zeros after the records of an older
// one as records lost. (A segment holds free space here only if
// SegmentBytes shrank since it was created.) The cut is synced before the
// new segment exists, so a crash leaves it either cut or still the newest.
func (w *WAL) roll(fill func(*encoder)) error {
	path := filepath.Join(w.dir, w.segs[len(w.segs)-1].name)
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("wal: rolling from %s: %w", path, err)
	}
	if fi.Size() > w.size {
		if err := os.Truncate(path, w.size); err != nil {
			return fmt.Errorf("wal: cutting the free space of %s: %w", path, err)
		}
		// fdatasync need not persist a shrink: a full fsync.
		if err := w.syncFile(w.f); err != nil {
			return fmt.Errorf("wal: syncing segment %s: %w", path, err)
		}
		w.dirty = false
	}
	if w.dirty {
		if err := w.syncSegment(); err != nil {
			return err
		}
	}
	f := w.f
	w.f = nil
	if err := f.Close(); err != nil {
		return fmt.Errorf("wal: closing segment: %w", err)
	}
	return w.newSegment(w.segs[len(w.segs)-1].seq+1, fill)
}

// newSegment creates segment seq: a meta record carrying the current hard
// state and snapshot marker, then the records fill adds (fill may be nil),
// then zeros up to SegmentBytes (preallocated). It is written to a
// temporary file, fsynced, renamed and the directory fsynced, so a segment
// never exists without its meta record. It becomes the open segment.
func (w *WAL) newSegment(seq uint64, fill func(*encoder)) error {
	name := segmentName(seq, w.terms.last+1)
	path := filepath.Join(w.dir, name)
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("wal: creating segment: %w", err)
	}
	var sf segFile = f
	if w.wrapFile != nil {
		sf = w.wrapFile(f)
	}
	w.enc = encoder{buf: w.enc.buf[:0], seq: seq}
	w.enc.meta(meta{
		clusterID: w.opts.ClusterID, nodeID: w.opts.NodeID, seq: seq,
		hs: w.hs, snap: marker{index: w.snap.index, term: w.snap.term, crc: w.snap.crc},
	})
	if fill != nil {
		fill(&w.enc)
	}
	n, err := sf.WriteAt(w.enc.buf, 0)
	w.stats.Bytes += uint64(n)
	w.stats.Writes++
	if err == nil && n < len(w.enc.buf) {
		err = io.ErrShortWrite
	}
	if err == nil {
		err = w.preallocate(f, tmp)
	}
	if err == nil {
		err = w.hook("segment-written")
	}
	if err == nil {
		err = w.syncFile(sf)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = w.syncDir(w.dir)
	}
	w.releaseBuf()
	if err != nil {
		sf.Close()
		os.Remove(tmp) // gone already if the rename happened
		return fmt.Errorf("wal: creating segment %s: %w", name, err)
	}
	w.stats.Records += uint64(w.enc.n)
	w.stats.SegmentsCreated++
	w.f, w.size, w.dirty = sf, int64(n), false
	w.durable, w.marked = 0, 0
	w.markDurable()
	w.segs = append(w.segs, segment{seq: seq, name: name, version: metaVersion})
	return nil
}

// syncSegment syncs the open segment's data (fdatasync where there is one:
// the file's size and blocks change only when a write runs past the
// preallocated space, and fdatasync covers that case too).
func (w *WAL) syncSegment() error {
	if err := w.syncWith(w.f, datasync); err != nil {
		return fmt.Errorf("wal: syncing segment %s: %w", w.segs[len(w.segs)-1].name, err)
	}
	w.dirty = false
	w.markDurable()
	return nil
}

// markDurable records that the open segment is durable up to its end,
// after a sync. Under NoSync nothing is durable, and no sync record may
// say so.
func (w *WAL) markDurable() {
	if !w.opts.NoSync {
		w.durable = w.size
	}
}

// syncFile fsyncs f unless NoSync is set, counting and reporting it.
func (w *WAL) syncFile(f segFile) error {
	return w.syncWith(f, segFile.Sync)
}

// syncWith is syncFile with the sync call given.
func (w *WAL) syncWith(f segFile, sync func(segFile) error) error {
	if w.opts.NoSync {
		return nil
	}
	start := time.Now()
	err := sync(f)
	w.synced(time.Since(start))
	w.stats.Fsyncs++
	return err
}

// syncDir fsyncs directory dir unless NoSync is set, so that files created,
// renamed or removed in it stay so after a crash.
func (w *WAL) syncDir(dir string) error {
	if w.opts.NoSync {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("wal: syncing directory: %w", err)
	}
	start := time.Now()
	err = d.Sync()
	w.synced(time.Since(start))
	w.stats.DirSyncs++
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("wal: syncing directory %s: %w", dir, err)
	}
	return nil
}

// preallocate extends the segment file f at path to SegmentBytes unless
// NoPreallocate is set or it is that long already. A full disk (or quota)
// is logged and not an error.
func (w *WAL) preallocate(f *os.File, path string) error {
	if w.opts.NoPreallocate {
		return nil
	}
	err := preallocate(f, w.opts.SegmentBytes)
	if err != nil && noSpace(err) {
		// Preallocation only makes syncs cheaper: without it the file grows
		// with its records, and the writes fail when the disk is full.
		w.log.Warn("wal: no space to preallocate a segment; it will grow as written", "file", path, "bytes", w.opts.SegmentBytes, "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("wal: preallocating %d bytes for %s: %w", w.opts.SegmentBytes, path, err)
	}
	return nil
}

func (w *WAL) synced(d time.Duration) {
	w.stats.SyncTime += d
	if w.opts.OnSync != nil {
		w.opts.OnSync(d)
	}
}
