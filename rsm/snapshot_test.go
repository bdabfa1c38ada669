package rsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/kv"
	"github.com/flotilla-dev/flotilla/node"
	"github.com/google/go-cmp/cmp"
)

// randomCommands returns n commands at indices 1..n from a seeded source:
// a mix of new, next, retried, stale and skipping sequence numbers from a
// few clients, unsessioned commands, malformed data, and a clock that
// mostly advances, sometimes jumps past the TTL and sometimes goes back.
func randomCommands(seed uint64, n int, cmd func(r *rand.Rand) []byte) []node.Command {
	r := rand.New(rand.NewPCG(seed, 0))
	seqs := map[uint64]uint64{}
	now := int64(1_000_000)
	cmds := make([]node.Command, n)
	for i := range cmds {
		switch r.IntN(10) {
		case 0:
			now += int64(2 * time.Minute / time.Millisecond)
		case 1:
			now -= int64(r.IntN(5000))
		default:
			now += int64(r.IntN(2000))
		}
		client := uint64(r.IntN(12))
		seq := seqs[client]
		switch r.IntN(6) {
		case 0: // retry
		case 1:
			seq -= uint64(r.IntN(3)) // stale (may wrap: then a skip)
		case 2:
			seq += uint64(2 + r.IntN(3)) // skip
		default:
			seq++
		}
		if seq > seqs[client] {
			seqs[client] = seq
		}
		data := EncodeEnvelope(Envelope{ClientID: client, Seq: seq, Now: now, Cmd: cmd(r)})
		if r.IntN(25) == 0 {
			data = data[:r.IntN(len(data))]
		}
		cmds[i] = node.Command{Index: uint64(i + 1), Term: 1, Data: data}
	}
	return cmds
}

func kvCmd(r *rand.Rand) []byte {
	key := []byte{byte('a' + r.IntN(8))}
	c := kv.Command{Op: kv.OpAppend, Key: key, Value: []byte{byte('0' + r.IntN(10))}}
	if r.IntN(3) == 0 {
		c = kv.Command{Op: kv.OpGet, Key: key}
	}
	b, err := kv.EncodeCommand(c)
	if err != nil {
		panic(err)
	}
	return b
}

// applyInBatches applies cmds in batches of random sizes.
func applyInBatches(m *Machine, cmds []node.Command, seed uint64) [][]byte {
	r := rand.New(rand.NewPCG(seed, 1))
	var out [][]byte
	for len(cmds) > 0 {
		n := min(1+r.IntN(8), len(cmds))
		out = append(out, m.Apply(cmds[:n])...)
		cmds = cmds[n:]
	}
	return out
}

func TestDeterminism(t *testing.T) {
	opts := Options{SessionTTL: time.Minute, MaxSessions: 6}
	for seed := uint64(1); seed <= 20; seed++ {
		cmds := randomCommands(seed, 400, kvCmd)
		sa, sb := kv.NewStore(), kv.NewStore()
		a, b := New(sa, opts), New(sb, opts)
		ra := applyInBatches(a, cmds, seed)
		rb := applyInBatches(b, cmds, seed+100)
		if diff := cmp.Diff(ra, rb); diff != "" {
			t.Fatalf("seed %d: results differ (-a +b):\n%s", seed, diff)
		}
		if !bytes.Equal(mustSnapshot(t, a), mustSnapshot(t, b)) {
			t.Fatalf("seed %d: snapshots differ", seed)
		}
		if sa.Hash() != sb.Hash() {
			t.Fatalf("seed %d: store hashes differ", seed)
		}
	}
}

// TestRestoreMidway checks that a Machine restored from a snapshot taken
// midway through the log, then fed the rest, matches one that applied it
// all: the dedup table, its LRU order and the clock survive the snapshot.
func TestRestoreMidway(t *testing.T) {
	opts := Options{SessionTTL: time.Minute, MaxSessions: 5}
	for seed := uint64(1); seed <= 20; seed++ {
		cmds := randomCommands(seed, 400, kvCmd)
		whole := New(kv.NewStore(), opts)
		want := whole.Apply(cmds)

		first := New(kv.NewStore(), opts)
		cut := 1 + int(seed*17)%(len(cmds)-1)
		got := first.Apply(cmds[:cut])
		restored := New(kv.NewStore(), opts)
		if err := restored.Restore(mustSnapshot(t, first)); err != nil {
			t.Fatalf("seed %d: Restore: %v", seed, err)
		}
		got = append(got, restored.Apply(cmds[cut:])...)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("seed %d cut %d: results differ (-whole +restored):\n%s", seed, cut, diff)
		}
		if !bytes.Equal(mustSnapshot(t, whole), mustSnapshot(t, restored)) {
			t.Fatalf("seed %d cut %d: snapshots differ", seed, cut)
		}
	}
}

func TestRestoreKeepsDedup(t *testing.T) {
	app := &fakeApp{}
	m := New(app, Options{})
	d := &driver{t: t, m: m}
	orig := d.send(1, 1, 10, "x")
	d.send(1, 2, 20, "y")
	d.send(2, 7, 30, "z")
	img := mustSnapshot(t, m)

	app2 := &fakeApp{}
	m2 := New(app2, Options{})
	if err := m2.Restore(img); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if m2.Sessions() != 2 || m2.Clock() != 30 {
		t.Fatalf("restored Sessions %d Clock %d, want 2 and 30", m2.Sessions(), m2.Clock())
	}
	d2 := &driver{t: t, m: m2, index: d.index}
	calls := len(app2.calls)
	retry := d2.send(2, 7, 40, "z")
	if want := d.send(2, 7, 40, "z"); !bytes.Equal(retry, want) {
		t.Errorf("retry after Restore = %q, want %q", retry, want)
	}
	if _, err := DecodeResult(d2.send(1, 1, 40, "x")); !errors.Is(err, ErrStaleSequence) {
		t.Errorf("stale after Restore: err = %v, want ErrStaleSequence (first result was %q)", err, orig)
	}
	if len(app2.calls) != calls {
		t.Errorf("the App ran %d commands for a retry and a stale command", len(app2.calls)-calls)
	}
	if p, err := DecodeResult(d2.send(1, 3, 40, "w")); err != nil || string(p) != "6:w" {
		t.Errorf("next seq after Restore = %q, %v; want \"6:w\"", p, err)
	}
}

// reseal recomputes the checksum of an image edited in place.
func reseal(b []byte) []byte {
	body := b[:len(b)-4]
	binary.LittleEndian.PutUint32(b[len(body):], crc32.Checksum(body, castagnoli))
	return b
}

// sampleImage returns a Machine with two sessions and its snapshot.
// Offsets in the image: header 21 bytes, then session records of 36 bytes
// plus the result.
func sampleImage(t testing.TB) (*Machine, []byte) {
	m := New(&fakeApp{}, Options{})
	d := &driver{t: t, m: m}
	d.send(5, 1, 100, "a") // index 1, result "1:a" + status = 4 bytes
	d.send(9, 3, 200, "b") // index 2
	return m, mustSnapshot(t, m)
}

func TestRestoreRejectsCorruption(t *testing.T) {
	m, img := sampleImage(t)
	const s0, s1 = snapHeader, snapHeader + snapSession + 4 // session record offsets
	edit := func(f func(b []byte)) []byte {
		b := bytes.Clone(img)
		f(b)
		return reseal(b)
	}
	put64 := func(off int, v uint64) []byte {
		return edit(func(b []byte) { binary.LittleEndian.PutUint64(b[off:], v) })
	}
	cases := map[string][]byte{
		"empty":              nil,
		"magic":              edit(func(b []byte) { b[0] = 'X' }),
		"format":             edit(func(b []byte) { b[4] = 2 }),
		"negative clock":     put64(5, 1<<63),
		"count too large":    put64(13, 1<<40),
		"count one more":     put64(13, 3),
		"count one less":     put64(13, 1),
		"client zero":        put64(s0, 0),
		"clients unsorted":   put64(s1, 5),
		"active after clock": put64(s0+16, 201),
		"negative active":    put64(s0+16, 1<<63),
		"index zero":         put64(s0+24, 0),
		"index shared":       put64(s1+24, 1),
		"active not ordered": put64(s0+24, 3), // session 5 now later by index but earlier in time
		"result too long":    edit(func(b []byte) { binary.LittleEndian.PutUint32(b[s0+32:], 1<<30) }),
		"result status":      edit(func(b []byte) { b[s0+36] = statusStale }),
		"app length":         edit(func(b []byte) { b[len(b)-4-len("1:a;2:b;")-8]++ }),
		"app rejects":        edit(func(b []byte) { copy(b[len(b)-7:], "bad") }),
	}
	for i := range img {
		b := bytes.Clone(img)
		b[i] ^= 0x10
		cases["flip byte "+strconv.Itoa(i)] = b
	}
	for n := 0; n < len(img); n += 7 {
		cases["truncated to "+strconv.Itoa(n)] = img[:n]
	}
	for name, b := range cases {
		err := m.Restore(b)
		if err == nil {
			t.Errorf("%s: Restore succeeded", name)
			continue
		}
		if name != "app rejects" && !errors.Is(err, ErrCorruptSnapshot) {
			t.Errorf("%s: error %v does not wrap ErrCorruptSnapshot", name, err)
		}
		if got := mustSnapshot(t, m); !bytes.Equal(got, img) {
			t.Fatalf("%s: failed Restore changed the Machine", name)
		}
	}
}

type failingApp struct{ fakeApp }

func (failingApp) Snapshot() ([]byte, error) { return nil, errors.New("disk on fire") }

func TestSnapshotAppError(t *testing.T) {
	if _, err := New(&failingApp{}, Options{}).Snapshot(); err == nil {
		t.Error("Snapshot succeeded although the App's failed")
	}
}
