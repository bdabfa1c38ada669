package sim

import "container/heap"

// event is something that happens at a virtual time. seq breaks ties so that
// equal times always pop in the order they were pushed.
type event struct {
	at   int64 // virtual microseconds
	seq  uint64
	kind eventKind
	node uint64 // the node the event happens to
	inc  int    // node incarnation a tick or sync belongs to
	msg  *inflightMsg
}

type eventKind uint8

const (
	evTick eventKind = iota + 1
	evDeliver
	evPropose
	evNemesis
	evSync
	evRead
	evKV // a KV client acts (node holds the client index, inc its op number)
)

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
}

type scheduler struct {
	q   eventQueue
	seq uint64
	now int64
}

func (s *scheduler) push(e *event) {
	s.seq++
	e.seq = s.seq
	heap.Push(&s.q, e)
}

func (s *scheduler) pop() *event {
	e := heap.Pop(&s.q).(*event)
	s.now = e.at
	return e
}
