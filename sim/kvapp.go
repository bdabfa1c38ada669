package sim

import (
	"fmt"

	"github.com/flotilla-dev/flotilla/kv"
	"github.com/flotilla-dev/flotilla/node"
	"github.com/flotilla-dev/flotilla/raft"
	"github.com/flotilla-dev/flotilla/rsm"
)

// kvMark starts the data of an entry that carries a KV client's command
// (an rsm envelope): the simulator's other commands are plain strings.
const kvMark = 'K'

// app is a host's replicated KV service: the real kv.Store under the real
// rsm.Machine (exactly-once sessions), fed the KV entries of the log.
type app struct {
	m *rsm.Machine
	s *kv.Store
}

func newApp() *app {
	s := kv.NewStore()
	return &app{m: rsm.New(s, rsm.Options{}), s: s}
}

// isKV reports whether an entry carries a KV client command.
func isKV(e raft.Entry) bool {
	return e.Type == raft.EntryNormal && len(e.Data) > 0 && e.Data[0] == kvMark
}

// apply applies a KV entry and returns the rsm result.
func (a *app) apply(e raft.Entry) []byte {
	return a.m.Apply([]node.Command{{Index: e.Index, Term: e.Term, Data: e.Data[1:]}})[0]
}

func (a *app) snapshot() []byte {
	b, err := a.m.Snapshot()
	if err != nil {
		panic(fmt.Sprintf("sim: KV snapshot: %v", err))
	}
	return b
}

func restoreApp(image []byte) (*app, error) {
	a := newApp()
	if len(image) == 0 {
		return a, nil
	}
	if err := a.m.Restore(image); err != nil {
		return nil, err
	}
	return a, nil
}

// kvCommand builds the entry data of a client command.
func kvCommand(client, seq uint64, now int64, c kv.Command) []byte {
	cmd, err := kv.EncodeCommand(c)
	if err != nil {
		panic(fmt.Sprintf("sim: encoding %v: %v", c.Op, err))
	}
	env := rsm.EncodeEnvelope(rsm.Envelope{ClientID: client, Seq: seq, Now: now, Cmd: cmd})
	return append([]byte{kvMark}, env...)
}

// kvResult decodes the result of a client command into the history's
// output form.
func kvResult(op kvInput, res []byte) (kvOutput, error) {
	payload, err := rsm.DecodeResult(res)
	if err != nil {
		return kvOutput{}, err
	}
	r, err := kv.DecodeResult(payload)
	if err != nil {
		return kvOutput{}, err
	}
	if err := r.AsError(); err != nil {
		return kvOutput{}, err
	}
	return kvOutput{Found: r.Found, Value: string(r.Value), Swapped: r.Swapped}, nil
}

// localGet reads key from the host's store (a ReadIndex read).
func (a *app) localGet(key string) kvOutput {
	e, ok := a.s.Get([]byte(key))
	return kvOutput{Found: ok, Value: string(e.Value)}
}
