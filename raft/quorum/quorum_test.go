package quorum

import (
	"flag"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestMain pins rapid's seed, and raises its number of checks to 1000, so
// that `go test` explores the same cases on every run. Pass -rapid.seed=N
// (or RAPID_SEED=N) to explore others, and -rapid.checks=N to explore more.
func TestMain(m *testing.M) {
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, v := range map[string]string{"rapid.seed": "20250101", "rapid.checks": "1000"} {
		env := "RAPID_" + strings.ToUpper(strings.TrimPrefix(name, "rapid."))
		if _, ok := os.LookupEnv(env); ok || set[name] {
			continue
		}
		if err := flag.Set(name, v); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}

// naiveHolds reports whether a majority of the voters in m acknowledged
// index i or more. An empty Majority holds every index.
func naiveHolds(m Majority, acked map[uint64]uint64, i uint64) bool {
	if len(m) == 0 {
		return true
	}
	n := 0
	for id := range m {
		if acked[id] >= i { // a missing voter counts as index 0
			n++
		}
	}
	return n >= len(m)/2+1
}

// naiveCommitted is the largest candidate index that every half holds,
// found by trying every index that could be the answer.
func naiveCommitted(halves []Majority, acked map[uint64]uint64) uint64 {
	candidates := []uint64{0, math.MaxUint64}
	for _, v := range acked {
		candidates = append(candidates, v)
	}
	var best uint64
	found := false
	for _, c := range candidates {
		ok := true
		for _, h := range halves {
			ok = ok && naiveHolds(h, acked, c)
		}
		if ok && (!found || c > best) {
			best, found = c, true
		}
	}
	return best
}

// naiveVote tries every way the missing voters could still answer: the vote
// is won if every way wins, lost if none does, and pending otherwise. An
// empty half wins by definition.
func naiveVote(halves []Majority, votes map[uint64]bool) VoteResult {
	var missing []uint64
	seen := map[uint64]bool{}
	for _, h := range halves {
		for id := range h {
			if _, ok := votes[id]; !ok && !seen[id] {
				seen[id] = true
				missing = append(missing, id)
			}
		}
	}
	wins, ways := 0, 1<<len(missing)
	for mask := range ways {
		all := true
		for _, h := range halves {
			if len(h) == 0 {
				continue
			}
			granted := 0
			for id := range h {
				v, ok := votes[id]
				if !ok {
					v = mask&(1<<slices.Index(missing, id)) != 0
				}
				if v {
					granted++
				}
			}
			all = all && granted >= len(h)/2+1
		}
		if all {
			wins++
		}
	}
	switch wins {
	case ways:
		return VoteWon
	case 0:
		return VoteLost
	}
	return VotePending
}

func TestMajorityCommittedIndexTable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		voters []uint64
		acked  MapAckIndexer
		want   uint64
	}{
		{"empty config commits everything", nil, MapAckIndexer{1: 5}, math.MaxUint64},
		{"single voter", []uint64{1}, MapAckIndexer{1: 7}, 7},
		{"single voter unknown", []uint64{1}, MapAckIndexer{}, 0},
		{"three all equal", []uint64{1, 2, 3}, MapAckIndexer{1: 4, 2: 4, 3: 4}, 4},
		{"three median", []uint64{1, 2, 3}, MapAckIndexer{1: 9, 2: 5, 3: 1}, 5},
		{"three one unknown", []uint64{1, 2, 3}, MapAckIndexer{1: 9, 2: 5}, 5},
		{"three two unknown", []uint64{1, 2, 3}, MapAckIndexer{1: 9}, 0},
		{"four needs three", []uint64{1, 2, 3, 4}, MapAckIndexer{1: 10, 2: 8, 3: 6, 4: 4}, 6},
		{"five needs three", []uint64{1, 2, 3, 4, 5}, MapAckIndexer{1: 1, 2: 2, 3: 3, 4: 4, 5: 5}, 3},
		{"non-voter acks ignored", []uint64{1, 2, 3}, MapAckIndexer{1: 3, 4: 100, 5: 100}, 0},
		{"eight beyond the stack buffer", []uint64{1, 2, 3, 4, 5, 6, 7, 8},
			MapAckIndexer{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 7, 8: 8}, 4},
		{"nine", []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9},
			MapAckIndexer{1: 9, 2: 9, 3: 9, 4: 9, 5: 1, 6: 1, 7: 1, 8: 1, 9: 1}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NewMajority(tc.voters...).CommittedIndex(tc.acked); got != tc.want {
				t.Errorf("%v.CommittedIndex(%v) = %d, want %d", tc.voters, tc.acked, got, tc.want)
			}
		})
	}
}

func TestMajorityVoteResultTable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		voters []uint64
		votes  map[uint64]bool
		want   VoteResult
	}{
		{"empty config wins", nil, nil, VoteWon},
		{"single no answer", []uint64{1}, nil, VotePending},
		{"single granted", []uint64{1}, map[uint64]bool{1: true}, VoteWon},
		{"single rejected", []uint64{1}, map[uint64]bool{1: false}, VoteLost},
		{"three one grant", []uint64{1, 2, 3}, map[uint64]bool{1: true}, VotePending},
		{"three two grants", []uint64{1, 2, 3}, map[uint64]bool{1: true, 2: true}, VoteWon},
		{"three two rejects", []uint64{1, 2, 3}, map[uint64]bool{1: true, 2: false, 3: false}, VoteLost},
		{"three split pending", []uint64{1, 2, 3}, map[uint64]bool{1: true, 2: false}, VotePending},
		{"four two grants pending", []uint64{1, 2, 3, 4}, map[uint64]bool{1: true, 2: true}, VotePending},
		{"four two rejects lost", []uint64{1, 2, 3, 4}, map[uint64]bool{1: true, 2: true, 3: false, 4: false}, VoteLost},
		{"non-voter grants ignored", []uint64{1, 2, 3}, map[uint64]bool{1: true, 7: true, 8: true}, VotePending},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NewMajority(tc.voters...).VoteResult(tc.votes); got != tc.want {
				t.Errorf("%v.VoteResult(%v) = %v, want %v", tc.voters, tc.votes, got, tc.want)
			}
		})
	}
}

func TestJointTable(t *testing.T) {
	old, incoming := NewMajority(1, 2, 3), NewMajority(3, 4, 5)
	j := Joint{old, incoming}
	for _, tc := range []struct {
		name  string
		acked MapAckIndexer
		want  uint64
	}{
		{"old ahead, new behind", MapAckIndexer{1: 9, 2: 9, 3: 5, 4: 2, 5: 1}, 2},
		{"new ahead, old behind", MapAckIndexer{1: 1, 2: 1, 3: 5, 4: 9, 5: 9}, 1},
		{"shared voter decides", MapAckIndexer{1: 7, 3: 7, 4: 7}, 7},
	} {
		t.Run("committed/"+tc.name, func(t *testing.T) {
			if got := j.CommittedIndex(tc.acked); got != tc.want {
				t.Errorf("%v.CommittedIndex(%v) = %d, want %d", j, tc.acked, got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name  string
		votes map[uint64]bool
		want  VoteResult
	}{
		{"both won", map[uint64]bool{1: true, 2: true, 4: true, 5: true}, VoteWon},
		{"old won, new pending", map[uint64]bool{1: true, 2: true}, VotePending},
		{"old won, new lost", map[uint64]bool{1: true, 2: true, 4: false, 5: false}, VoteLost},
		{"old lost, new won", map[uint64]bool{1: false, 2: false, 4: true, 5: true}, VoteLost},
		{"both pending", map[uint64]bool{3: true}, VotePending},
		{"shared voter wins both", map[uint64]bool{1: true, 3: true, 4: true}, VoteWon},
	} {
		t.Run("vote/"+tc.name, func(t *testing.T) {
			if got := j.VoteResult(tc.votes); got != tc.want {
				t.Errorf("%v.VoteResult(%v) = %v, want %v", j, tc.votes, got, tc.want)
			}
		})
	}
	if got, want := j.String(), "(1 2 3)&&(3 4 5)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := j.IDs(), []uint64{1, 2, 3, 4, 5}; !slices.Equal(got, want) {
		t.Errorf("IDs() = %v, want %v", got, want)
	}
	if !j.Contains(1) || !j.Contains(5) || j.Contains(6) {
		t.Errorf("Contains wrong for %v", j)
	}
	if got, want := (Joint{old}).String(), "(1 2 3)"; got != want {
		t.Errorf("String() of a simple config = %q, want %q", got, want)
	}
	if got := (Joint{}).CommittedIndex(MapAckIndexer{}); got != math.MaxUint64 {
		t.Errorf("empty Joint CommittedIndex = %d, want MaxUint64", got)
	}
	if got := (Joint{}).VoteResult(nil); got != VoteWon {
		t.Errorf("empty Joint VoteResult = %v, want won", got)
	}
}

func TestVoteResultString(t *testing.T) {
	for r, want := range map[VoteResult]string{
		VotePending: "pending", VoteLost: "lost", VoteWon: "won", 0: "VoteResult(0)", 9: "VoteResult(9)",
	} {
		if got := r.String(); got != want {
			t.Errorf("VoteResult(%d).String() = %q, want %q", uint8(r), got, want)
		}
	}
}

// Generators for the property tests. IDs come from a small range so that the
// two halves of a Joint overlap often; indexes from a small range so that
// ties are common.

func genMajority(t *rapid.T, label string) Majority {
	ids := rapid.SliceOfNDistinct(rapid.Uint64Range(1, 12), 0, 9, rapid.ID[uint64]).Draw(t, label)
	return NewMajority(ids...)
}

func genAcked(t *rapid.T) MapAckIndexer {
	return rapid.MapOfN(rapid.Uint64Range(1, 12), rapid.Uint64Range(0, 20), 0, 12).Draw(t, "acked")
}

func genVotes(t *rapid.T) map[uint64]bool {
	return rapid.MapOfN(rapid.Uint64Range(1, 12), rapid.Bool(), 0, 12).Draw(t, "votes")
}

func TestMajorityCommittedIndexProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m, acked := genMajority(t, "voters"), genAcked(t)
		if got, want := m.CommittedIndex(acked), naiveCommitted([]Majority{m}, acked); got != want {
			t.Fatalf("%v.CommittedIndex(%v) = %d, naive oracle says %d", m, acked, got, want)
		}
	})
}

func TestMajorityVoteResultProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m, votes := genMajority(t, "voters"), genVotes(t)
		if got, want := m.VoteResult(votes), naiveVote([]Majority{m}, votes); got != want {
			t.Fatalf("%v.VoteResult(%v) = %v, naive oracle says %v", m, votes, got, want)
		}
	})
}

func TestJointCommittedIndexProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		j := Joint{genMajority(t, "old"), genMajority(t, "new")}
		acked := genAcked(t)
		if got, want := j.CommittedIndex(acked), naiveCommitted(j[:], acked); got != want {
			t.Fatalf("%v.CommittedIndex(%v) = %d, naive oracle says %d", j, acked, got, want)
		}
		// Outside a membership change, Joint is its first half.
		if got, want := (Joint{j[0]}).CommittedIndex(acked), j[0].CommittedIndex(acked); got != want {
			t.Fatalf("Joint{%v}.CommittedIndex = %d, Majority says %d", j[0], got, want)
		}
	})
}

func TestJointVoteResultProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		j := Joint{genMajority(t, "old"), genMajority(t, "new")}
		votes := genVotes(t)
		if got, want := j.VoteResult(votes), naiveVote(j[:], votes); got != want {
			t.Fatalf("%v.VoteResult(%v) = %v, naive oracle says %v", j, votes, got, want)
		}
		if got, want := (Joint{j[0]}).VoteResult(votes), j[0].VoteResult(votes); got != want {
			t.Fatalf("Joint{%v}.VoteResult = %v, Majority says %v", j[0], got, want)
		}
	})
}

// TestCommittedIndexMonotone checks that acknowledging more never lowers the
// committed index: the leader's commit index must never move back.
func TestCommittedIndexMonotone(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		j := Joint{genMajority(t, "old"), genMajority(t, "new")}
		acked := genAcked(t)
		before := j.CommittedIndex(acked)
		id := rapid.Uint64Range(1, 12).Draw(t, "id")
		acked[id] += rapid.Uint64Range(0, 5).Draw(t, "bump")
		if after := j.CommittedIndex(acked); after < before {
			t.Fatalf("committed index fell from %d to %d after voter %d acknowledged more", before, after, id)
		}
	})
}
