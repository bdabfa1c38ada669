package raft_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/flotilla-dev/flotilla/raft"
)

// The membership commands of the scripted scenarios (membership.txt).

// joinNode adds node N (the next ID) started with Join, configured like
// node 1, for a later propose-conf-change to add.
func (c *cluster) joinNode(t *testing.T, d *datadriven.TestData, w *strings.Builder) {
	pos := positional(d)
	if len(pos) != 1 || pos[0] != strconv.Itoa(len(c.members)+1) {
		d.Fatalf(t, "join-node N: N must be the next node ID, %d", len(c.members)+1)
	}
	cfg := c.members[0].cfg
	cfg.ID, cfg.Peers, cfg.Join = uint64(len(c.members)+1), nil, true
	m := &member{id: cfg.ID, cfg: cfg}
	c.members = append(c.members, m)
	c.boot(t, m)
	fmt.Fprintln(w, roleLine(m))
}

// proposeConfChange proposes a membership change: each argument after the
// node is vN (AddVoter), lN (AddLearner) or rN (RemoveNode); none leaves a
// joint configuration.
func (c *cluster) proposeConfChange(t *testing.T, d *datadriven.TestData, w *strings.Builder) {
	pos := positional(d)
	if len(pos) < 1 {
		d.Fatalf(t, "propose-conf-change ID [vN|lN|rN...]")
	}
	m := c.member(t, d, pos[0])
	var cc raft.ConfChange
	for _, a := range pos[1:] {
		id, err := strconv.ParseUint(a[1:], 10, 64)
		typ := map[byte]raft.ConfChangeType{'v': raft.AddVoter, 'l': raft.AddLearner, 'r': raft.RemoveNode}[a[0]]
		if err != nil || typ == 0 {
			d.Fatalf(t, "change %q: want vN, lN or rN", a)
		}
		cc.Changes = append(cc.Changes, raft.ConfChangeSingle{Type: typ, NodeID: id})
	}
	idx, term, err := m.node.ProposeConfChange(cc)
	if err != nil {
		fmt.Fprintf(w, "%d: %v\n", m.id, err)
		return
	}
	fmt.Fprintf(w, "%d: proposed %v at %d/%d\n", m.id, cc, term, idx)
}
