package sim

import (
	"bytes"
	"flag"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

var (
	flagSeeds = flag.Int("sim.seeds", 3000, "number of seeds TestSeeds runs")
	flagFirst = flag.Int64("sim.first", 1, "first seed TestSeeds runs")
	flagSteps = flag.Int("sim.steps", DefaultSteps, "faulty-phase events per seed in TestSeeds")
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestSeeds is the CI sweep: every seed must keep every property. Longer
// sweeps: go test ./sim -run TestSeeds -sim.seeds 20000.
func TestSeeds(t *testing.T) {
	sum := RunSeeds(Options{Steps: *flagSteps}, *flagFirst, *flagSeeds, 0)
	for _, v := range sum.Violations {
		t.Error(v.Report())
	}
	t.Logf("%d seeds, %d elections, %d commits, %d/%d acked, %d crashes, %d partitions, %d msgs dropped, %v virtual, %.0f seeds/s",
		sum.Seeds, sum.Elections, sum.Commits, sum.Acked, sum.Proposals, sum.Crashes, sum.Partitions,
		sum.MsgsDropped, sum.VirtualTime, sum.SeedsPerSecond())
	if sum.Elections < sum.Seeds || sum.Acked == 0 || sum.Crashes == 0 || sum.Partitions == 0 || sum.MsgsDropped == 0 {
		t.Errorf("the sweep exercised too little: %+v", sum)
	}
}

// TestFoundSeeds runs seeds whose violations led to fixes, so that each
// fix stays covered whatever range TestSeeds sweeps.
func TestFoundSeeds(t *testing.T) {
	for _, seed := range []int64{
		409631,           // a learner left without a leader (raft: non-voters answer stale leaders)
		1078511, 1086389, // the host compacted at an index the core did not know durable
	} {
		if res := Run(Options{Seed: seed}); res.Violation != nil {
			t.Errorf("seed %d: %s", seed, res.Violation.Report())
		}
	}
}

// TestDeterministic checks that one seed gives a byte-identical trace.
func TestDeterministic(t *testing.T) {
	for _, seed := range []int64{3, 77, 1234} {
		var a, b bytes.Buffer
		ra := Run(Options{Seed: seed, Trace: &a})
		rb := Run(Options{Seed: seed, Trace: &b})
		if a.Len() == 0 {
			t.Fatalf("seed %d: empty trace", seed)
		}
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Fatalf("seed %d: two runs gave different traces (%d vs %d bytes); first difference at line %d",
				seed, a.Len(), b.Len(), firstDiffLine(a.String(), b.String()))
		}
		if ra.Steps != rb.Steps || ra.Commits != rb.Commits || ra.MsgsDropped != rb.MsgsDropped {
			t.Fatalf("seed %d: results differ: %+v vs %+v", seed, ra, rb)
		}
		var c bytes.Buffer
		Run(Options{Seed: seed + 1, Trace: &c})
		if bytes.Equal(a.Bytes(), c.Bytes()) {
			t.Fatalf("seeds %d and %d gave the same trace", seed, seed+1)
		}
	}
}

func firstDiffLine(a, b string) int {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(la), len(lb)) {
		if la[i] != lb[i] {
			return i + 1
		}
	}
	return min(len(la), len(lb)) + 1
}

// TestFixedSizes runs every cluster size the simulator supports.
func TestFixedSizes(t *testing.T) {
	for nodes := 1; nodes <= 9; nodes++ {
		sum := RunSeeds(Options{Nodes: nodes, Steps: 2000}, 1000, 10, 0)
		for _, v := range sum.Violations {
			t.Errorf("nodes=%d: %s", nodes, v.Report())
		}
	}
}

// TestViolationReport checks that a failure names the seed, the property,
// the last events and a replay command.
func TestViolationReport(t *testing.T) {
	w := newWorld(Options{Seed: 99, Steps: 10, TraceTail: 3}.withDefaults())
	for i := range 5 {
		w.trace.add(int64(i), "event %d", i)
	}
	w.record("Election Safety", "n1 and n2 both lead term 4")
	v := w.res.Violation
	if v == nil {
		t.Fatal("no violation recorded")
	}
	rep := v.Report()
	for _, want := range []string{"seed=99", `"Election Safety"`, "event 2", "event 4",
		"go run ./cmd/flotilla sim raft --seed 99 --seeds 1 --steps 10 --trace seed-99.trace"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
	if strings.Contains(rep, "event 1") {
		t.Errorf("report keeps more than the last 3 events:\n%s", rep)
	}
}

// TestLivenessFailureIsReported makes the settle phase impossible (the
// cluster stays partitioned) and checks the run fails on liveness.
func TestLivenessFailureIsReported(t *testing.T) {
	w := newWorld(Options{Seed: 5, Steps: 500}.withDefaults())
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(stopRun); !ok {
					panic(r)
				}
			}
		}()
		for _, h := range w.nodes {
			h.start(false)
		}
		w.faulty = false
		// Every node alone: no quorum can form.
		for _, a := range w.nodes {
			for _, b := range w.nodes {
				w.net.blocked[a.id][b.id] = a.id != b.id
			}
		}
		w.settle()
	}()
	if v := w.res.Violation; v == nil || v.Property != "liveness" {
		t.Fatalf("got violation %+v, want liveness", v)
	}
}
