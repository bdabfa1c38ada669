package nemesis

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Stats counts a history's operations.
type Stats struct {
	Ops, Reads, Writes, Acked, Unknown int
}

// Stats counts the operations of the run's clients (the final reads left
// out).
func (r *Result) Stats() Stats {
	var s Stats
	for _, e := range r.Events {
		if e.Client == 0 {
			continue
		}
		s.Ops++
		switch {
		case e.In.Op == OpGet:
			s.Reads++
		case e.Out.Unknown:
			s.Writes++
			s.Unknown++
		default:
			s.Writes++
			s.Acked++
		}
	}
	return s
}

// Summary is the text of summary.txt.
func (r *Result) Summary() string {
	var b strings.Builder
	verdict := "PASS"
	if r.Err() != nil {
		verdict = "FAIL"
	}
	o := r.Options
	var faults []string
	for _, f := range o.Faults {
		faults = append(faults, string(f))
	}
	fmt.Fprintf(&b, "flotilla nemesis: %s\n\n", verdict)
	fmt.Fprintf(&b, "seed %d, %d members, %d clients, faults [%s], tick %v, fsync %v, new keys every %v\n", o.Seed, o.Nodes, o.Clients, strings.Join(faults, ","), o.Tick, !o.NoSync, o.KeyEpoch)
	fmt.Fprintf(&b, "clients ran %v under faults; the whole run took %v (%s to %s UTC)\n", o.Duration,
		r.End.Sub(r.Start).Round(100*time.Millisecond), r.Start.UTC().Format(time.TimeOnly), r.End.UTC().Format(time.TimeOnly))
	s := r.Stats()
	fmt.Fprintf(&b, "operations: %d (%.0f/s): %d reads, %d writes (%d acknowledged, %d with an unknown outcome)\n\n",
		s.Ops, float64(s.Ops)/o.Duration.Seconds(), s.Reads, s.Writes, s.Acked, s.Unknown)
	fmt.Fprintf(&b, "faults injected: %d\n", len(r.Faults))
	for _, f := range r.Faults {
		fmt.Fprintf(&b, "  %6.1fs – %6.1fs  %s\n", seconds(f.Start), seconds(f.End), f.Description)
	}
	fmt.Fprintf(&b, "\nchecks:\n")
	for _, c := range r.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "  %s %s: %s\n", mark, c.Name, c.Detail)
	}
	fmt.Fprintf(&b, "\nreport: %s\n  timeline.html  the history (porcupine), faults on the \"nemesis\" row\n  cluster/       config and member logs%s\n",
		o.ReportDir, map[bool]string{true: " and data directories (kept after a violation)", false: ""}[r.Err() != nil])
	return b.String()
}

// writeReport writes summary.txt and timeline.html into the report
// directory.
func writeReport(r *Result) error {
	dir := r.Options.ReportDir
	r.SummaryPath = filepath.Join(dir, "summary.txt")
	r.TimelinePath = filepath.Join(dir, "timeline.html")
	var ann []porcupine.Annotation
	colors := map[Fault]string{FaultKill: "#f4a6a6", FaultPause: "#f6d58e", FaultPartition: "#a6c8f4", FaultOneWay: "#c3a6f4", FaultSlowFsync: "#a6f4c3"}
	for _, f := range r.Faults {
		ann = append(ann, porcupine.Annotation{Tag: "nemesis", Start: f.Start, End: f.End, Description: f.Description,
			Details: fmt.Sprintf("%s from %.3fs to %.3fs", f.Kind, seconds(f.Start), seconds(f.End)), BackgroundColor: colors[f.Kind]})
	}
	r.info.AddAnnotations(ann)
	if err := porcupine.VisualizePath(model, r.info, r.TimelinePath); err != nil {
		return fmt.Errorf("nemesis: writing the timeline: %w", err)
	}
	if err := os.WriteFile(r.SummaryPath, []byte(r.Summary()), 0o644); err != nil {
		return fmt.Errorf("nemesis: writing the summary: %w", err)
	}
	return nil
}
