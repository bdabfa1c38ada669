//go:build linux

package wal

import (
	"errors"
	"os"
	"syscall"
)

// preallocate makes f at least size bytes long with its blocks allocated
// (as unwritten extents, which read as zeros), so that later writes inside
// it change no file size and allocate nothing: an fdatasync after them
// flushes the data without a journal commit for the file's metadata. A
// filesystem without fallocate gets a sparse extension instead, which reads
// the same and only loses the speed.
func preallocate(f *os.File, size int64) error {
	for {
		err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.ENOSYS), errors.Is(err, syscall.EINVAL):
			return extend(f, size)
		}
		return err
	}
}

// datasync flushes f's data and the metadata needed to read it back (its
// size), but not its timestamps: fdatasync(2). A file that is not an
// *os.File (a test's fault-injecting wrapper) gets Sync.
func datasync(f segFile) error {
	osf, ok := f.(*os.File)
	if !ok {
		return f.Sync()
	}
	for {
		err := syscall.Fdatasync(int(osf.Fd()))
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// noSpace reports whether err says the disk or the quota is full.
func noSpace(err error) bool { return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) }
