//go:build !unix

package wal

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDir creates dir/LOCK but cannot lock it on this platform: running two
// WALs on one directory is not detected here.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("wal: creating the lock file: %w", err)
	}
	return f, nil
}
