package main

import (
	"fmt"
	"os"
	"syscall"
)

// childProcAttr puts a member in its own process group (so that a Ctrl-C
// reaches only flotilla up, which stops members in order) and asks the
// kernel to send it SIGTERM if flotilla up dies.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// lockDir takes an exclusive lock on path, so that two flotilla up runs
// cannot share a data directory.
func lockDir(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s is in use by another flotilla up (stop it first, or use another --data-dir)", path)
	}
	return func() { f.Close() }, nil
}
