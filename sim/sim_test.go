package sim

import (
	"testing"
)

func TestQuick(t *testing.T) {
	for seed := int64(1); seed <= 50; seed++ {
		r := Run(Options{Seed: seed})
		if r.Violation != nil {
			t.Fatal(r.Violation.Report())
		}
		t.Logf("seed %d: %+v", seed, r)
	}
}
