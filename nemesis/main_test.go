package nemesis

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// flotillaBin is the binary the members run, built once by TestMain.
var flotillaBin string

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "flotilla-nemesis-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "nemesis: temp dir for the binary:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	flotillaBin = filepath.Join(dir, "flotilla")
	cmd := exec.Command("go", "build", "-o", flotillaBin, "github.com/flotilla-dev/flotilla/cmd/flotilla")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "nemesis: building flotilla: %v\n%s", err, out)
		return 1
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "nemesis: goroutines leaked:", err)
			code = 1
		}
	}
	return code
}
