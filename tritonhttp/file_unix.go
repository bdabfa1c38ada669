//go:build unix

package tritonhttp

import "syscall"

const openNonblock = syscall.O_NONBLOCK
