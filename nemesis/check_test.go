package nemesis

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/proto/kvpb"
)

// ev builds an event; ret < 0 marks an unknown outcome.
func ev(client int, in Input, out Output, call, ret int64) Event {
	if ret < 0 {
		out, ret = Output{Unknown: true}, math.MaxInt64
	}
	return Event{Client: client, In: in, Out: out, Call: call, Return: ret}
}

func get(k string) Input            { return Input{Op: OpGet, Key: k} }
func put(k, v string) Input         { return Input{Op: OpPut, Key: k, Value: v} }
func appendTok(k, tok string) Input { return Input{Op: OpAppend, Key: k, Value: tok + tokenEnd} }
func found(v string) Output         { return Output{Found: true, Value: v} }

// agreeing is a final state in which every member holds vals.
func agreeing(vals map[string]Output) *final {
	fin := &final{local: map[uint64]map[string]Output{}}
	for id := uint64(1); id <= 3; id++ {
		fin.statuses = append(fin.statuses, &kvpb.StatusResponse{MemberId: id, AppliedIndex: 10, StateHash: 7, Keys: 2})
		fin.local[id] = map[string]Output{}
		for k, v := range vals {
			fin.local[id][k] = v
		}
	}
	return fin
}

func failed(checks []Check) map[string]string {
	out := map[string]string{}
	for _, c := range checks {
		if !c.OK {
			out[c.Name] = c.Detail
		}
	}
	return out
}

// TestCheckerAcceptsGoodHistory: concurrent and unknown operations that
// have a linearization, and a final state that holds every acknowledged
// append.
func TestCheckerAcceptsGoodHistory(t *testing.T) {
	h := []Event{
		ev(1, put("r0", "c1.1"), Output{}, 0, 10),
		ev(2, get("r0"), found("c1.1"), 5, 15), // concurrent with the put
		ev(1, appendTok("a0", "c1.2"), Output{}, 20, 30),
		ev(2, appendTok("a0", "c2.2"), Output{}, 25, -1), // unknown, and applied
		ev(3, appendTok("a0", "c3.1"), Output{}, 26, -1), // unknown, and lost: allowed
		ev(0, get("r0"), found("c1.1"), 100, 110),
		ev(0, get("a0"), found("c1.2;c2.2;"), 111, 120),
	}
	checks, _ := check(h, agreeing(finalValues(h)), 10*time.Second)
	if f := failed(checks); len(f) != 0 {
		t.Fatalf("a good history failed: %v", f)
	}
}

// TestCheckerCatchesLostWrite is the negative control: an acknowledged
// append missing from the final value, a stale read, a duplicated append
// and a replica that disagrees must each be reported.
func TestCheckerCatchesLostWrite(t *testing.T) {
	for _, tc := range []struct {
		name  string
		h     []Event
		fin   func(*final)
		fails []string
	}{{
		name: "lost acknowledged append",
		h: []Event{
			ev(1, appendTok("a0", "c1.1"), Output{}, 0, 10),
			ev(1, appendTok("a0", "c1.2"), Output{}, 20, 30),
			ev(0, get("a0"), found("c1.1;"), 100, 110),
		},
		fails: []string{CheckLinearizable, CheckLostWrites},
	}, {
		name: "stale read",
		h: []Event{
			ev(1, put("r0", "c1.1"), Output{}, 0, 10),
			ev(1, put("r0", "c1.2"), Output{}, 20, 30),
			ev(2, get("r0"), found("c1.1"), 40, 50), // after c1.2 was acknowledged
			ev(0, get("r0"), found("c1.2"), 100, 110),
		},
		fails: []string{CheckLinearizable},
	}, {
		name: "append applied twice",
		h: []Event{
			ev(1, appendTok("a1", "c1.1"), Output{}, 0, 10),
			ev(0, get("a1"), found("c1.1;c1.1;"), 100, 110),
		},
		fails: []string{CheckLinearizable, CheckLostWrites},
	}, {
		name: "replica disagrees",
		h: []Event{
			ev(1, put("r0", "c1.1"), Output{}, 0, 10),
			ev(0, get("r0"), found("c1.1"), 100, 110),
		},
		fin: func(f *final) {
			f.statuses[2].StateHash = 8
			f.local[3]["r0"] = Output{}
		},
		fails: []string{CheckReplicas},
	}, {
		name: "member crashed",
		h: []Event{
			ev(1, put("r0", "c1.1"), Output{}, 0, 10),
			ev(0, get("r0"), found("c1.1"), 100, 110),
		},
		fin:   func(f *final) { f.crashes = []string{"member 2 exited on its own"} },
		fails: []string{CheckCrashes},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			fin := agreeing(finalValues(tc.h))
			if tc.fin != nil {
				tc.fin(fin)
			}
			checks, _ := check(tc.h, fin, 10*time.Second)
			f := failed(checks)
			for _, name := range tc.fails {
				if _, ok := f[name]; !ok {
					t.Errorf("check %q passed; want it to fail (failures: %v)", name, f)
				}
			}
			if len(f) != len(tc.fails) {
				t.Errorf("failed checks %v; want exactly %v", f, tc.fails)
			}
			res := &Result{Checks: checks}
			if err := res.Err(); err == nil || !strings.Contains(err.Error(), "violation") {
				t.Errorf("Result.Err() = %v; want a violation", err)
			}
		})
	}
}

func TestParseFaults(t *testing.T) {
	fs, err := ParseFaults("kill, pause,kill,oneway")
	if err != nil || len(fs) != 3 || fs[0] != FaultKill || fs[2] != FaultOneWay {
		t.Fatalf("ParseFaults = %v, %v", fs, err)
	}
	if _, err := ParseFaults("kill,flood"); err == nil || !strings.Contains(err.Error(), `"flood"`) {
		t.Fatalf("ParseFaults(flood) = %v; want an error naming it", err)
	}
}

// TestCompactedReads checks that reads of long values, compacted to their
// hash, length and tail as the workload records them, are still checked:
// the current value passes, a value one token short fails.
func TestCompactedReads(t *testing.T) {
	var h []Event
	var full string
	for i := range 40 {
		tok := "c1." + strings.Repeat("x", 5) + string(rune('a'+i%26))
		h = append(h, ev(1, appendTok("a2", tok), Output{}, int64(10*i), int64(10*i+5)))
		full += tok + tokenEnd
	}
	short := full[:strings.LastIndex(full[:len(full)-1], tokenEnd)+1]
	for _, tc := range []struct {
		read string
		ok   bool
	}{{full, true}, {short, false}} {
		read := found(tc.read).compact()
		if !read.compacted || len(read.Value) != tailBytes {
			t.Fatalf("compact kept %d bytes (compacted %v)", len(read.Value), read.compacted)
		}
		hist := append(slices.Clone(h), ev(2, get("a2"), read, 1000, 1010), ev(0, get("a2"), found(full), 2000, 2010))
		checks, _ := check(hist, agreeing(finalValues(hist)), 10*time.Second)
		if got := checks[0].OK; got != tc.ok {
			t.Errorf("read of %d bytes (full value %d): linearizable %v, want %v: %s", len(tc.read), len(full), got, tc.ok, checks[0].Detail)
		}
	}
}
