//go:build !linux

package test

import (
	"errors"
	"syscall"
)

// childAttr returns no special attributes: outside Linux, a child outlives
// a test process that dies before its cleanup runs.
func childAttr() *syscall.SysProcAttr { return nil }

// childPIDs is only implemented on Linux (from /proc).
func childPIDs(int) ([]int, error) { return nil, errors.ErrUnsupported }

// processGone is only implemented on Linux (from /proc).
func processGone(int) (bool, error) { return false, errors.ErrUnsupported }
