package sim

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
)

// The model accepts a legal history and rejects a stale read.
func TestKVModel(t *testing.T) {
	op := func(c int, in kvInput, call int64, out kvOutput, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: in, Call: call, Output: out, Return: ret}
	}
	legal := []porcupine.Operation{
		op(0, kvInput{Op: kvPut, Key: "x", Value: "1"}, 0, kvOutput{}, 10),
		op(1, kvInput{Op: kvGet, Key: "x"}, 5, kvOutput{}, 6), // concurrent with the put: may miss it
		op(1, kvInput{Op: kvAppend, Key: "x", Value: "2"}, 11, kvOutput{Found: true, Value: "1"}, 12),
		op(0, kvInput{Op: kvCAS, Key: "x", Expect: "12", Value: "3"}, 13, kvOutput{Found: true, Swapped: true}, 14),
		op(1, kvInput{Op: kvGet, Key: "x"}, 15, kvOutput{Found: true, Value: "3"}, 16),
		op(0, kvInput{Op: kvDelete, Key: "x"}, 17, kvOutput{Found: true, Value: "3"}, 18),
		op(1, kvInput{Op: kvPut, Key: "y", Value: "9"}, 19, kvOutput{Unknown: true}, 1<<62),
	}
	if !porcupine.CheckOperations(kvModel, legal) {
		t.Error("a legal history was rejected")
	}
	stale := []porcupine.Operation{
		op(0, kvInput{Op: kvPut, Key: "x", Value: "1"}, 0, kvOutput{}, 10),
		op(1, kvInput{Op: kvGet, Key: "x"}, 11, kvOutput{}, 12), // after the put returned: must see it
	}
	if porcupine.CheckOperations(kvModel, stale) {
		t.Error("a stale read was accepted")
	}
}

// A host that serves ReadIndex reads before applying the read index
// returns stale data; the linearizability check catches it, and writes
// the visualization.
func TestLinearizabilityCatchesStaleReads(t *testing.T) {
	dir := t.TempDir()
	for seed := int64(1); seed <= 300; seed++ {
		r := Run(Options{Seed: seed, breakReadWait: true, VisualizationDir: dir})
		v := r.Violation
		if v == nil {
			continue
		}
		if v.Property != "Linearizability" {
			t.Fatalf("seed %d: caught as %q, want Linearizability: %s", seed, v.Property, v.Detail)
		}
		b, err := os.ReadFile(filepath.Join(dir, "seed-"+itoa(seed)+"-linearizability.html"))
		if err != nil || !strings.Contains(string(b), "leads term") {
			t.Fatalf("seed %d: visualization missing or without annotations: %v", seed, err)
		}
		t.Logf("seed %d caught it: %s", seed, v.Detail)
		return
	}
	t.Fatal("none of 300 seeds caught reads served before their index was applied")
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }
