package sim

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/anishathalye/porcupine"
)

// kvState is the sequential specification's state of one key.
type kvState struct {
	exists bool
	value  string
}

// kvModel is the sequential specification of the KV store, partitioned by
// key, for porcupine. An operation whose outcome is unknown (the run ended
// first) is allowed any output: porcupine may place it anywhere after its
// call, or at the very end, where it affects nothing.
var kvModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(kvInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return kvState{} },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(kvState), input.(kvInput), output.(kvOutput)
		next, want := kvStep(st, in)
		if out.Unknown {
			return true, next
		}
		switch in.Op {
		case kvGet:
			return out.Found == st.exists && (!st.exists || out.Value == st.value), st
		case kvCAS:
			if want.Swapped {
				return out.Swapped, next
			}
			return !out.Swapped && out.Found == st.exists && (!st.exists || out.Value == st.value), st
		default:
			return out.Found == st.exists, next
		}
	},
	DescribeOperation: func(input, output any) string {
		return describeInput(input.(kvInput)) + " -> " + describeOutput(output.(kvOutput))
	},
	DescribeState: func(state any) string {
		st := state.(kvState)
		if !st.exists {
			return "(absent)"
		}
		return fmt.Sprintf("%q", st.value)
	},
}

// kvStep applies in to st: the next state and the output it gives.
func kvStep(st kvState, in kvInput) (kvState, kvOutput) {
	out := kvOutput{Found: st.exists, Value: st.value}
	switch in.Op {
	case kvPut:
		return kvState{true, in.Value}, out
	case kvAppend:
		return kvState{true, st.value + in.Value}, out
	case kvDelete:
		return kvState{}, out
	case kvCAS:
		if st.exists && st.value == in.Expect {
			return kvState{true, in.Value}, kvOutput{Found: true, Swapped: true}
		}
	}
	return st, out
}

func describeInput(in kvInput) string {
	switch in.Op {
	case kvGet:
		if in.ReadIndex {
			return fmt.Sprintf("get(%s) [readindex]", in.Key)
		}
		return fmt.Sprintf("get(%s) [log]", in.Key)
	case kvPut:
		return fmt.Sprintf("put(%s, %q)", in.Key, in.Value)
	case kvAppend:
		return fmt.Sprintf("append(%s, %q)", in.Key, in.Value)
	case kvCAS:
		return fmt.Sprintf("cas(%s, %q -> %q)", in.Key, in.Expect, in.Value)
	case kvDelete:
		return fmt.Sprintf("delete(%s)", in.Key)
	}
	return "?"
}

func describeOutput(out kvOutput) string {
	switch {
	case out.Unknown:
		return "unknown"
	case out.Swapped:
		return "swapped"
	case out.Found:
		return fmt.Sprintf("%q", out.Value)
	}
	return "absent"
}

// checkLinearizable checks the run's KV history with porcupine. On an
// illegal history it writes porcupine's visualization, annotated with the
// run's leader changes and faults, and records a violation.
func (w *world) checkLinearizable() {
	if len(w.history) == 0 {
		return
	}
	res, info := porcupine.CheckOperationsVerbose(kvModel, w.history, 20*time.Second)
	switch res {
	case porcupine.Ok:
		return
	case porcupine.Unknown:
		w.res.LinearizabilityUnknown = true
		return
	}
	detail := fmt.Sprintf("porcupine found no linearization of the %d KV operations", len(w.history))
	if dir := w.opts.VisualizationDir; dir != "" {
		info.AddAnnotations(w.annotations)
		path := filepath.Join(dir, fmt.Sprintf("seed-%d-linearizability.html", w.opts.Seed))
		if err := os.MkdirAll(dir, 0o755); err == nil {
			if err := porcupine.VisualizePath(kvModel, info, path); err == nil {
				detail += "; visualization in " + path
				w.res.Visualization = path
			}
		}
	}
	w.record("Linearizability", detail)
}

// annotate marks a moment of the run (a leader change, a fault) for the
// visualization.
func (w *world) annotate(tag, desc string) {
	w.annotations = append(w.annotations, porcupine.Annotation{Tag: tag, Start: w.now(), Description: desc})
}
