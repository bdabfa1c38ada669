//go:build !unix

package mapreduce

import "os/exec"

// setProcGroup keeps exec's default: cancelling kills the command only.
func setProcGroup(*exec.Cmd) {}
