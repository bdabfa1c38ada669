package wal

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/flotilla-dev/flotilla/raft"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var discard = slog.New(slog.DiscardHandler)

// tb is what the helpers need of *testing.T, *testing.B and *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// allocBytes returns how many bytes f allocated.
func allocBytes(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// errInjected is what tests return from crashHook and fault wrappers.
var errInjected = errors.New("injected fault")

// testOpts are options for a test directory: fsync skipped (no test
// simulates power loss; the page cache keeps unsynced writes across a
// process "crash"), logs discarded.
func testOpts() Options {
	return Options{ClusterID: 7, NodeID: 3, NoSync: true, Logger: discard}
}

func mustOpen(t tb, dir string, o Options) *WAL {
	t.Helper()
	w, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return w
}

func mustClose(t tb, w *WAL) {
	t.Helper()
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// crash abandons w the way a killed process does: no sync, no cleanup.
func crash(w *WAL) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	w.lock.Close() // the kernel drops a dead process's locks
	w.closed = true
}

// mkEnts returns entries lo..hi of term t with recognizable data.
func mkEnts(t, lo, hi uint64) []raft.Entry {
	var ents []raft.Entry
	for i := lo; i <= hi; i++ {
		ents = append(ents, raft.Entry{Term: t, Index: i, Type: raft.EntryNormal, Data: fmt.Appendf(nil, "entry %d of term %d", i, t)})
	}
	return ents
}

func mkSnap(term, index uint64, data string) raft.Snapshot {
	return raft.Snapshot{
		Meta: raft.SnapshotMeta{Index: index, Term: term, ConfState: raft.ConfState{Voters: []uint64{1, 2, 3}}},
		Data: []byte(data),
	}
}

// model is the naive oracle: the PersistedState every operation should
// leave, computed with plain slices.
type model struct {
	hs   raft.HardState
	snap *raft.Snapshot
	ents []raft.Entry
}

func (m *model) snapIndex() uint64 {
	if m.snap == nil {
		return 0
	}
	return m.snap.Meta.Index
}

func (m *model) last() uint64 { return m.snapIndex() + uint64(len(m.ents)) }

func (m *model) term(i uint64) uint64 {
	if i == m.snapIndex() {
		if m.snap == nil {
			return 0
		}
		return m.snap.Meta.Term
	}
	return m.ents[i-m.snapIndex()-1].Term
}

func (m *model) save(hs raft.HardState, ents []raft.Entry) {
	if len(ents) > 0 {
		keep := ents[0].Index - m.snapIndex() - 1
		m.ents = append(slices.Clone(m.ents[:keep]), cloneEnts(ents)...)
	}
	if !hs.IsEmpty() {
		m.hs = hs
	}
}

func (m *model) compact(s raft.Snapshot) {
	m.ents = slices.Clone(m.ents[s.Meta.Index-m.snapIndex():])
	m.snap = cloneSnap(s)
}

func (m *model) install(s raft.Snapshot) {
	m.ents = nil
	m.snap = cloneSnap(s)
}

func (m *model) state() raft.PersistedState {
	return raft.PersistedState{HardState: m.hs, Snapshot: m.snap, Entries: m.ents}
}

func cloneEnts(ents []raft.Entry) []raft.Entry {
	out := slices.Clone(ents)
	for i := range out {
		if len(out[i].Data) == 0 {
			out[i].Data = nil
		} else {
			out[i].Data = slices.Clone(out[i].Data)
		}
	}
	return out
}

func cloneSnap(s raft.Snapshot) *raft.Snapshot {
	c := s
	c.Data = slices.Clone(s.Data)
	c.Meta.ConfState.Voters = slices.Clone(s.Meta.ConfState.Voters)
	return &c
}

// stateDiff compares recovered states; nil and empty slices are equal.
func stateDiff(want, got raft.PersistedState) string {
	return cmp.Diff(want, got, cmpopts.EquateEmpty())
}

func checkState(t tb, w *WAL, want raft.PersistedState) {
	t.Helper()
	if d := stateDiff(want, w.Recovered()); d != "" {
		t.Fatalf("Recovered() mismatch (-want +got):\n%s", d)
	}
}

// reopen closes w and opens its directory again.
func reopen(t tb, w *WAL) *WAL {
	t.Helper()
	mustClose(t, w)
	return mustOpen(t, w.dir, w.opts)
}

// segFiles returns the segment file paths of dir in order.
func segFiles(t tb, dir string) []string {
	t.Helper()
	segs, _, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range segs {
		out = append(out, filepath.Join(dir, s.name))
	}
	return out
}

func snapFiles(t tb, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(dir, snapDirName))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}

// recordBounds returns the start offsets of the records of a segment file's
// bytes, plus its length as the last element.
func recordBounds(t tb, path string, b []byte) []int64 {
	t.Helper()
	seq, ok := parseSegmentName(filepath.Base(path))
	if !ok {
		t.Fatalf("%s is not a segment", path)
	}
	var bounds []int64
	off := 0
	for off < len(b) {
		bounds = append(bounds, int64(off))
		_, n, err := decodeRecord(b[off:], seq, int64(off))
		if err != nil {
			t.Fatalf("%s at %d: %v", path, off, err)
		}
		off += n
	}
	return append(bounds, int64(len(b)))
}

func wantCorrupt(t tb, err error, file string) *CorruptError {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want an error wrapping ErrCorrupt", err)
	}
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("got %T %v, want a *CorruptError", err, err)
	}
	if file != "" && !strings.HasSuffix(ce.File, file) {
		t.Fatalf("CorruptError names %q, want %q", ce.File, file)
	}
	return ce
}

// recordsEnd returns the offset just after the records of segment file
// path: where its free space (zeros up to the file's size) starts, or its
// size. It fails the test if the records do not decode to there.
func recordsEnd(t tb, path string) int64 {
	t.Helper()
	seq, ok := parseSegmentName(filepath.Base(path))
	if !ok {
		t.Fatalf("%s is not a segment", path)
	}
	sc, err := scanSegment(path, seq, func(record, int64) error { return nil })
	if err != nil || sc.bad != nil {
		t.Fatalf("%s: %v %v", path, err, sc.bad)
	}
	return sc.end
}

// segData returns the bytes of segment file path up to the end of its
// records, without its free space.
func segData(t tb, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b[:recordsEnd(t, path)]
}

// trimSegments cuts every segment of dir to its records: the shape a WAL
// with NoPreallocate (or one from before preallocation) leaves.
func trimSegments(t tb, dir string) {
	t.Helper()
	for _, p := range segFiles(t, dir) {
		if err := os.Truncate(p, recordsEnd(t, p)); err != nil {
			t.Fatal(err)
		}
	}
}

// nonZeroEnd returns the offset just after the last non-zero byte of b at
// or after from, or from if there is none.
func nonZeroEnd(b []byte, from int64) int64 {
	for i := int64(len(b)) - 1; i >= from; i-- {
		if b[i] != 0 {
			return i + 1
		}
	}
	return from
}
