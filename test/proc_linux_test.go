package test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// childAttr makes the kernel kill a child process if the test process dies
// (a panic or a go test timeout), so that no member outlives a test run.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// childPIDs returns the processes whose parent is pid, from /proc.
func childPIDs(pid int) ([]int, error) {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return nil, err
	}
	var kids []int
	for _, path := range stats {
		ppid, _, err := procStat(path)
		if err != nil {
			continue // the process went away
		}
		if ppid == pid {
			kid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
			kids = append(kids, kid)
		}
	}
	return kids, nil
}

// processGone reports whether pid has exited (it no longer exists, or is a
// zombie waiting to be reaped).
func processGone(pid int) (bool, error) {
	_, state, err := procStat(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return state == "Z" || state == "X", nil
}

// procStat reads the parent PID and state from a /proc/PID/stat file:
// "pid (comm) state ppid ...", where comm may hold spaces and parentheses.
func procStat(path string) (ppid int, state string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, "", err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, "", fmt.Errorf("%s: no command name in %q", path, s)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, "", fmt.Errorf("%s: too few fields in %q", path, s)
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0], err
}
