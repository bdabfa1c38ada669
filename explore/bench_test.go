package explore

import "testing"

// BenchmarkExplore explores the default bounds to depth 7 and reports
// states per second.
func BenchmarkExplore(b *testing.B) {
	o := DefaultOptions()
	o.Depth = 7
	var explored int
	for b.Loop() {
		r, err := Explore(o)
		if err != nil {
			b.Fatal(err)
		}
		explored += r.Explored
	}
	b.ReportMetric(float64(explored)/b.Elapsed().Seconds(), "states/s")
}
