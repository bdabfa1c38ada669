package sim

import "github.com/flotilla-dev/flotilla/raft"

// inflightMsg is a message on the simulated wire; fromInc is the sender's
// incarnation, so a snapshot report never reaches a restarted sender.
type inflightMsg struct {
	m       raft.Message
	fromInc int
}

// network holds the link state: blocked[from][to] cuts one direction.
type network struct {
	blocked       [][]bool // indexed by node ID; row and column 0 unused
	dropRate      float64
	dupRate       float64
	sent, dropped int
	duplicated    int
	nodes         int
}

func newNetwork(nodes int) network {
	n := network{nodes: nodes}
	n.blocked = make([][]bool, nodes+1)
	for i := range n.blocked {
		n.blocked[i] = make([]bool, nodes+1)
	}
	return n
}

// split cuts every link between a and b, both ways, on top of existing cuts.
func (n *network) split(a, b []uint64) {
	for _, x := range a {
		for _, y := range b {
			n.blocked[x][y] = true
			n.blocked[y][x] = true
		}
	}
}

func (n *network) healAll() {
	for i := range n.blocked {
		clear(n.blocked[i])
	}
}
