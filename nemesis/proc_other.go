//go:build !linux

package nemesis

import "syscall"

// childAttr is the default elsewhere: members share the nemesis's process
// group and are not killed by the kernel if it dies.
func childAttr() *syscall.SysProcAttr { return nil }
