package nemesis

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var (
	duration = flag.Duration("nemesis.duration", 30*time.Second, "how long TestNemesisShort runs its clients under faults")
	seed     = flag.Int64("nemesis.seed", 0, "TestNemesisShort's seed (0: derived from the time, and logged)")
)

// TestNemesisShort runs a 3-member cluster of real processes with 4
// clients under kill -9, SIGSTOP and partitions (both kinds) for
// -nemesis.duration (30 s by default; about 40 s in all with the checks),
// and expects every check to pass. On a failure the report directory is
// kept and named.
func TestNemesisShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes for about 40 s")
	}
	s := *seed
	if s == 0 {
		s = time.Now().UnixNano() % 1_000_000
	}
	dir, err := os.MkdirTemp("", "flotilla-nemesis-report-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("seed %d (replay a similar run with go test ./nemesis -run TestNemesisShort -nemesis.seed %d); report in %s", s, s, dir)
	ctx, cancel := context.WithTimeout(context.Background(), *duration+3*time.Minute)
	defer cancel()
	res, err := Run(ctx, Options{Binary: flotillaBin, Duration: *duration, Seed: s, ReportDir: dir, Progress: testWriter{t}})
	if err != nil {
		t.Fatalf("the run did not complete: %v (member logs in %s)", err, filepath.Join(dir, "cluster"))
	}
	t.Logf("\n%s", res.Summary())
	if err := res.Err(); err != nil {
		t.Fatalf("%v", err)
	}
	if len(res.Faults) == 0 {
		t.Fatalf("no fault was injected in %v", *duration)
	}
	os.RemoveAll(dir)
}

// testWriter logs each write as a line of the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-min(1, len(p))]))
	return len(p), nil
}
