package nemesis

import (
	"context"
	"errors"
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

// TestNemesisCatchesStaleReads is the negative control on real processes:
// clients that read with kvclient.Serializable from random members while
// members are isolated must produce a history the checker rejects.
func TestNemesisCatchesStaleReads(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes for about 10 s")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Run(ctx, Options{Binary: flotillaBin, Duration: 6 * time.Second, Seed: 1, ReportDir: dir,
		Faults: []Fault{FaultPartition, FaultPause}, StaleReads: true, Progress: testWriter{t}})
	if err != nil {
		t.Fatalf("the run did not complete: %v", err)
	}
	if !errors.Is(res.Err(), ErrViolation) {
		t.Fatalf("stale reads passed the checks:\n%s", res.Summary())
	}
	for _, c := range res.Checks {
		if c.Name == CheckLinearizable && c.OK {
			t.Fatalf("the linearizability check passed stale reads:\n%s", res.Summary())
		}
	}
	for _, f := range []string{res.SummaryPath, res.TimelinePath} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("report file %s: %v", f, err)
		}
	}
	t.Logf("as expected: %v", res.Err())
}
