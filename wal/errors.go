package wal

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of them (test
// with errors.Is) and add the file, the offset or the values involved.
var (
	// ErrCorrupt is wrapped by every error that reports stored data failing
	// a check: a bad checksum that is not a torn tail, a record out of
	// place, a missing or damaged snapshot file. *CorruptError matches it.
	// Nothing is repaired or skipped: restore the node from a peer (wipe
	// the directory and let the leader send a snapshot) or from a backup.
	ErrCorrupt = errors.New("wal: corrupt data")
	// ErrClusterMismatch is wrapped by the error Open returns when the
	// directory was created for another cluster ID or node ID.
	ErrClusterMismatch = errors.New("wal: directory belongs to another cluster or node")
	// ErrLocked is wrapped by the error Open returns when another WAL (in
	// this or another process) has the directory open.
	ErrLocked = errors.New("wal: directory is in use by another WAL (another process, or an Open without Close)")
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("wal: closed")
	// ErrInvalid is wrapped by the error a method returns when its argument
	// breaks the log's rules (a gap, an entry before the snapshot, an
	// oversized record). Nothing was written; the WAL stays usable.
	ErrInvalid = errors.New("wal: invalid argument")
	// ErrFailed is wrapped, together with the original error, by every
	// method called after a write, fsync, rename or unlink failed. The WAL
	// refuses further work instead of writing after a possible hole; close
	// it and Open the directory again to recover what reached the disk.
	ErrFailed = errors.New("wal: unusable after an earlier I/O failure; reopen the directory")
)

// CorruptError reports stored data that failed a check at a known place.
// errors.Is(err, ErrCorrupt) holds for every *CorruptError.
type CorruptError struct {
	// File is the path of the damaged segment or snapshot file, or of the
	// directory when the problem is between files (a missing segment).
	File string
	// Offset is the byte offset in File of the record (or snapshot file
	// field) that failed, or -1 when the problem has no single place (a
	// file that is missing altogether).
	Offset int64
	// Reason says which check failed.
	Reason string
}

// Error implements error.
func (e *CorruptError) Error() string {
	if e.Offset < 0 {
		return fmt.Sprintf("wal: corrupt data: %s: %s", e.File, e.Reason)
	}
	return fmt.Sprintf("wal: corrupt data: %s at byte %d: %s", e.File, e.Offset, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) true for a *CorruptError.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// invalidf returns an error wrapping ErrInvalid.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}
