package transport

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/flotilla-dev/flotilla/raft"
)

// Faults is a fault-injection filter for testing: it drops messages to and
// from chosen peers, so that a test or the nemesis (nemesis/) can cut the
// network between real processes, symmetrically or one way, without
// touching the host's network. It is installed with Transport.SetFaults
// and is only ever installed when a member is started with
// --fault-injection; a production member never has one.
//
// An outbound cut (Block) drops messages in Send, before they are queued:
// messages queued earlier still go out. An inbound cut (BlockFrom) drops
// messages after they are read from the connection, before the Handler
// sees them. Connections stay up either way, like a lossy network rather
// than a refused one. A dropped MsgSnap is reported failed, so that the
// Raft leader retries it once the cut heals. All methods are safe for
// concurrent use; a nil *Faults drops nothing.
type Faults struct {
	mu   sync.RWMutex
	to   map[uint64]bool // peers whose outgoing messages are dropped; guarded by mu
	from map[uint64]bool // peers whose incoming messages are dropped; guarded by mu

	droppedOut atomic.Uint64
	droppedIn  atomic.Uint64
}

// FaultState is what a Faults drops, and how much it has dropped.
type FaultState struct {
	// DropTo lists the peers this node's messages to are dropped,
	// ascending.
	DropTo []uint64 `json:"drop_to"`
	// DropFrom lists the peers whose messages to this node are dropped,
	// ascending.
	DropFrom []uint64 `json:"drop_from"`
	// DroppedOut and DroppedIn count the messages dropped so far.
	DroppedOut uint64 `json:"dropped_out"`
	DroppedIn  uint64 `json:"dropped_in"`
}

// NewFaults returns a filter that drops nothing.
func NewFaults() *Faults {
	return &Faults{to: map[uint64]bool{}, from: map[uint64]bool{}}
}

// Block drops every later message to the given peers.
func (f *Faults) Block(to ...uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range to {
		f.to[id] = true
	}
}

// BlockFrom drops every later message from the given peers.
func (f *Faults) BlockFrom(from ...uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range from {
		f.from[id] = true
	}
}

// Set replaces both lists: afterwards exactly the messages to the peers in
// to and from the peers in from are dropped.
func (f *Faults) Set(to, from []uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.to)
	clear(f.from)
	for _, id := range to {
		f.to[id] = true
	}
	for _, id := range from {
		f.from[id] = true
	}
}

// Heal stops dropping anything.
func (f *Faults) Heal() { f.Set(nil, nil) }

// State returns what f drops now and the drop counts.
func (f *Faults) State() FaultState {
	f.mu.RLock()
	defer f.mu.RUnlock()
	st := FaultState{DropTo: []uint64{}, DropFrom: []uint64{},
		DroppedOut: f.droppedOut.Load(), DroppedIn: f.droppedIn.Load()}
	for id := range f.to {
		st.DropTo = append(st.DropTo, id)
	}
	for id := range f.from {
		st.DropFrom = append(st.DropFrom, id)
	}
	slices.Sort(st.DropTo)
	slices.Sort(st.DropFrom)
	return st
}

func (f *Faults) dropsTo(id uint64) bool {
	if f == nil {
		return false
	}
	f.mu.RLock()
	drop := f.to[id]
	f.mu.RUnlock()
	if drop {
		f.droppedOut.Add(1)
	}
	return drop
}

func (f *Faults) dropsFrom(id uint64) bool {
	if f == nil {
		return false
	}
	f.mu.RLock()
	drop := f.from[id]
	f.mu.RUnlock()
	if drop {
		f.droppedIn.Add(1)
	}
	return drop
}

// SetFaults installs f as the transport's fault filter (nil removes it).
// For tests and the nemesis only.
func (t *Transport) SetFaults(f *Faults) { t.faults.Store(f) }

// dropOutbound reports whether the fault filter drops m in Send; a dropped
// MsgSnap is reported failed.
func (t *Transport) dropOutbound(m *raft.Message) bool {
	if !t.faults.Load().dropsTo(m.To) {
		return false
	}
	if m.Type == raft.MsgSnap {
		t.rep.snapshot(m.To, false)
	}
	return true
}

// dropInbound reports whether the fault filter drops a message from node
// from before the Handler sees it.
func (t *Transport) dropInbound(from uint64) bool {
	return t.faults.Load().dropsFrom(from)
}
