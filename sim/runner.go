package sim

import (
	"runtime"
	"sync"
	"time"
)

// Summary aggregates the results of many seeds.
type Summary struct {
	Seeds          int
	Violations     []*Violation
	Elections      int
	Commits        uint64
	Proposals      int
	Acked          int
	Reads          int
	ReadsServed    int
	KVOps          int
	LinUnknown     int
	MsgsSent       int
	MsgsDropped    int
	MsgsDuplicated int
	Crashes        int
	Partitions     int
	Transfers      int
	ConfChanges    int
	Steps          int
	VirtualTime    time.Duration
	WallTime       time.Duration
}

// SeedsPerSecond is the simulation throughput of the run.
func (s Summary) SeedsPerSecond() float64 {
	if s.WallTime <= 0 {
		return 0
	}
	return float64(s.Seeds) / s.WallTime.Seconds()
}

// RunSeeds runs seeds first, first+1, … first+count-1 with base options on
// parallel workers (0 means one per CPU) and aggregates the results, in
// seed order. Violations are sorted by seed.
func RunSeeds(base Options, first int64, count, parallel int) Summary {
	if parallel <= 0 {
		parallel = runtime.GOMAXPROCS(0)
	}
	start := time.Now()
	results := make([]Result, count)
	var wg sync.WaitGroup
	next := make(chan int)
	for range parallel {
		wg.Go(func() {
			for i := range next {
				o := base
				o.Seed = first + int64(i)
				results[i] = Run(o)
			}
		})
	}
	for i := range count {
		next <- i
	}
	close(next)
	wg.Wait()
	s := Summary{Seeds: count, WallTime: time.Since(start)}
	for _, r := range results {
		if r.Violation != nil {
			s.Violations = append(s.Violations, r.Violation)
		}
		s.Elections += r.Elections
		s.Commits += r.Commits
		s.Proposals += r.Proposals
		s.Acked += r.Acked
		s.Reads += r.Reads
		s.ReadsServed += r.ReadsServed
		s.KVOps += r.KVOps
		if r.LinearizabilityUnknown {
			s.LinUnknown++
		}
		s.MsgsSent += r.MsgsSent
		s.MsgsDropped += r.MsgsDropped
		s.MsgsDuplicated += r.MsgsDuplicated
		s.Crashes += r.Crashes
		s.Partitions += r.Partitions
		s.Transfers += r.Transfers
		s.ConfChanges += r.ConfChanges
		s.Steps += r.Steps
		s.VirtualTime += r.VirtualTime
	}
	return s
}
