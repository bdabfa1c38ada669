package mapreduce

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "mapreduce: goroutines leaked:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// flotillaBin builds ./cmd/flotilla once, for the tests that run the real
// binary, and skips them under -short.
func flotillaBin(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the flotilla binary")
	}
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "flotilla-mr-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "flotilla")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/flotilla")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/flotilla: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}
