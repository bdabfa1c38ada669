//go:build !linux

package main

import "syscall"

// childProcAttr is the default elsewhere: members share up's process group.
func childProcAttr() *syscall.SysProcAttr { return nil }

// lockDir does not lock outside Linux; the members' WAL locks still refuse
// a second cluster on the same directories.
func lockDir(string) (func(), error) { return func() {}, nil }
