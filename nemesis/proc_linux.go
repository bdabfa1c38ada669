package nemesis

import "syscall"

// childAttr puts a member in its own process group, so that a Ctrl-C
// reaches only the nemesis, which then kills the members, and makes the
// kernel kill a member if the nemesis dies.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
