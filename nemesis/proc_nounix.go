//go:build !unix

package nemesis

import (
	"errors"
	"os"
)

var errNoSignals = errors.New("nemesis: pause faults need SIGSTOP and SIGCONT (a Unix system)")

func signalStop(*os.Process) error { return errNoSignals }
func signalCont(*os.Process) error { return errNoSignals }
