package sim

import (
	"fmt"
	"io"
	"time"
)

// tracer writes every event to an optional writer and keeps the last few
// for failure reports. Lines hold only virtual time and event data, so the
// same seed always gives the same bytes. Without a writer, events are kept
// unformatted and rendered only if a report needs them.
type tracer struct {
	w    io.Writer
	ring []traceEvent
	next int
	full bool
}

type traceEvent struct {
	now    int64
	format string
	args   []any
}

func (e traceEvent) String() string {
	return fmt.Sprintf("%12s  ", time.Duration(e.now)*time.Microsecond) + fmt.Sprintf(e.format, e.args...)
}

func newTracer(w io.Writer, tail int) tracer {
	return tracer{w: w, ring: make([]traceEvent, tail)}
}

// add records an event. The args must not change afterwards: messages and
// IDs are passed by value.
func (t *tracer) add(now int64, format string, args ...any) {
	e := traceEvent{now, format, args}
	if t.w != nil {
		fmt.Fprintln(t.w, e.String())
	}
	t.ring[t.next] = e
	t.next = (t.next + 1) % len(t.ring)
	if t.next == 0 {
		t.full = true
	}
}

func (t *tracer) tail() []string {
	evs := t.ring[:t.next]
	if t.full {
		evs = append(append([]traceEvent(nil), t.ring[t.next:]...), t.ring[:t.next]...)
	}
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.String()
	}
	return out
}
