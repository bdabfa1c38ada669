package main

import (
	"errors"
	"strings"
	"testing"
)

// TestNemesisUsage checks the nemesis command's usage errors; the run
// itself is tested in nemesis (TestNemesisShort).
func TestNemesisUsage(t *testing.T) {
	for _, args := range [][]string{
		{"nemesis", "--faults", "kill,flood"},
		{"nemesis", "--nodes", "2"},
		{"nemesis", "extra"},
	} {
		_, _, err := run(t, args...)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: error %v, want a usage error", args, err)
		}
	}
	out, _, err := run(t, "nemesis", "--help")
	if err != nil || !strings.Contains(out, "flotilla nemesis --duration 60s") {
		t.Errorf("nemesis --help: %v\n%s", err, out)
	}
}
