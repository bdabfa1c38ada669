package sim

import (
	"fmt"
	"io"
	"time"
)

// tracer writes every event to an optional writer and keeps the last few
// for failure reports. Lines hold only virtual time and event data, so the
// same seed always gives the same bytes.
type tracer struct {
	w    io.Writer
	ring []string
	next int
	full bool
}

func newTracer(w io.Writer, tail int) tracer {
	return tracer{w: w, ring: make([]string, tail)}
}

func (t *tracer) add(now int64, format string, args ...any) {
	line := fmt.Sprintf("%12s  ", time.Duration(now)*time.Microsecond) + fmt.Sprintf(format, args...)
	if t.w != nil {
		fmt.Fprintln(t.w, line)
	}
	t.ring[t.next] = line
	t.next = (t.next + 1) % len(t.ring)
	if t.next == 0 {
		t.full = true
	}
}

func (t *tracer) tail() []string {
	if !t.full {
		return append([]string(nil), t.ring[:t.next]...)
	}
	return append(append([]string(nil), t.ring[t.next:]...), t.ring[:t.next]...)
}
