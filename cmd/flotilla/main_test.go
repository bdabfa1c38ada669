package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), errOut.String(), err
}

func TestVersion(t *testing.T) {
	out, _, err := run(t, "version")
	if err != nil || !strings.HasPrefix(out, "flotilla ") {
		t.Fatalf("version: %q, %v", out, err)
	}
}

func TestSimRaftSummary(t *testing.T) {
	out, _, err := run(t, "sim", "raft", "--seeds", "20", "--nodes", "5", "--steps", "1000")
	if err != nil {
		t.Fatalf("sim raft: %v", err)
	}
	for _, want := range []string{"seeds run         20 (1..20)", "violations        0", "elections", "commits",
		"dropped", "virtual time", "seeds per second"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

func TestSimRaftJSONAndTrace(t *testing.T) {
	trace := filepath.Join(t.TempDir(), "t.trace")
	out, _, err := run(t, "sim", "raft", "--seed", "7", "--seeds", "1", "--trace", trace, "--json")
	if err != nil {
		t.Fatalf("sim raft: %v", err)
	}
	var got struct {
		Seeds      int   `json:"seeds"`
		Violations []any `json:"violations"`
		Steps      int   `json:"steps"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("bad JSON %q: %v", out, err)
	}
	if got.Seeds != 1 || len(got.Violations) != 0 || got.Steps == 0 {
		t.Errorf("unexpected summary %+v", got)
	}
	b, err := os.ReadFile(trace)
	if err != nil || bytes.Count(b, []byte("\n")) < got.Steps/2 {
		t.Errorf("trace file has %d bytes (err %v) for %d steps", len(b), err, got.Steps)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"sim", "raft", "--seeds", "0"},
		{"sim", "raft", "--nodes", "12"},
		{"sim", "raft", "--steps", "-1"},
		{"sim", "raft", "--seeds", "2", "--trace", "x"},
		{"sim", "raft", "--bogus"},
		{"sim", "raft", "extra"},
		{"version", "extra"},
		{"bogus"},
		{"sim", "paxosx"},
	} {
		_, _, err := run(t, args...)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%q: got %v, want a usage error", args, err)
		}
	}
}
