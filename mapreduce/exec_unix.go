//go:build unix

package mapreduce

import (
	"os/exec"
	"syscall"
)

// setProcGroup runs cmd in its own process group and kills the whole group
// when the task is cancelled, so a shell's children die with it.
func setProcGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
