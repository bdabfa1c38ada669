//go:build !linux

package wal

import (
	"errors"
	"os"
	"syscall"
)

// preallocate makes f at least size bytes long (a sparse extension that
// reads as zeros). See the Linux version, which also allocates the blocks.
func preallocate(f *os.File, size int64) error { return extend(f, size) }

// datasync is Sync where fdatasync is not used.
func datasync(f segFile) error { return f.Sync() }

// noSpace reports whether err says the disk is full.
func noSpace(err error) bool { return errors.Is(err, syscall.ENOSPC) }
