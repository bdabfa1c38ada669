package rsm

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/flotilla-dev/flotilla/node"
)

// fakeApp is a deterministic App that records every Apply. Its result
// echoes the index and command; its state is the log of applied commands.
type fakeApp struct {
	calls []call
}

type call struct {
	index uint64
	cmd   string
}

func (a *fakeApp) Apply(index uint64, cmd []byte) []byte {
	a.calls = append(a.calls, call{index, string(cmd)})
	return fmt.Appendf(nil, "%d:%s", index, cmd)
}

func (a *fakeApp) Snapshot() ([]byte, error) {
	var b []byte
	for _, c := range a.calls {
		b = fmt.Appendf(b, "%d:%s;", c.index, c.cmd)
	}
	return b, nil
}

// Restore accepts any image that does not contain "bad", keeping only its
// bytes (as one pseudo call) so that Snapshot reproduces it exactly.
func (a *fakeApp) Restore(data []byte) error {
	if bytes.Contains(data, []byte("bad")) {
		return errors.New("fake: bad image")
	}
	a.calls = nil
	if len(data) > 0 {
		a.calls = []call{{0, string(data)}}
	}
	return nil
}

// rawApp is a fakeApp whose Snapshot returns exactly what was restored.
type rawApp struct {
	fakeApp
	image []byte
}

func (a *rawApp) Snapshot() ([]byte, error) { return a.image, nil }

func (a *rawApp) Restore(data []byte) error {
	if err := a.fakeApp.Restore(data); err != nil {
		return err
	}
	a.image = bytes.Clone(data)
	return nil
}

// driver feeds commands to a Machine at increasing log indices.
type driver struct {
	t     testing.TB
	m     *Machine
	index uint64
}

func (d *driver) raw(data []byte) []byte {
	d.t.Helper()
	d.index++
	out := d.m.Apply([]node.Command{{Index: d.index, Term: 1, Data: data}})
	if len(out) != 1 {
		d.t.Fatalf("Apply returned %d results for 1 command", len(out))
	}
	return out[0]
}

func (d *driver) send(client, seq uint64, now int64, cmd string) []byte {
	d.t.Helper()
	return d.raw(EncodeEnvelope(Envelope{ClientID: client, Seq: seq, Now: now, Cmd: []byte(cmd)}))
}

func mustSnapshot(t testing.TB, m *Machine) []byte {
	t.Helper()
	b, err := m.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return b
}
