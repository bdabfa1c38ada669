package kv

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/google/btree"
)

// btreeDegree is the B-tree's degree: nodes hold 31 to 63 keys.
const btreeDegree = 32

// entry is one stored key. Entries are values in the tree and their byte
// slices are never modified after insertion (a write inserts a new entry),
// so a Clone of the tree taken for Snapshot stays unchanged.
type entry struct {
	key     []byte
	value   []byte
	version uint64
}

func lessEntry(a, b entry) bool { return bytes.Compare(a.key, b.key) < 0 }

// Store is the key-value state machine. Keys live in a B-tree ordered by
// bytes.Compare: Get, Put, Delete, Append and CAS take O(log n) plus the
// value's length; a Range of k keys takes O(log n + k).
//
// Apply must be called by one goroutine (the apply loop) with strictly
// increasing indices. Get, Len, Hash, Applied and Snapshot may be called
// concurrently with it and with each other; a read sees the state after
// some whole Apply, never part of one.
type Store struct {
	mu sync.RWMutex
	// tree holds the keys; guarded by mu.
	tree *btree.BTreeG[entry]
	// applied is the last index passed to Apply or restored from a
	// snapshot; every entry's version is at most applied. Guarded by mu.
	applied uint64
	// sum is the wrapping sum of entryHash over the entries in tree; it
	// depends only on the contents, not on the order of the writes.
	// Guarded by mu.
	sum uint64
}

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{tree: btree.NewG(btreeDegree, lessEntry)}
}

// Apply applies the encoded command cmd, the entry at log index index, and
// returns the encoded Result (see EncodeResult). Every write sets the key's
// Version to index; Get and Range change nothing. A command that does not
// decode or validate, or an Append that would exceed MaxValueBytes, yields
// a Result with only Err set and leaves the contents unchanged. The same
// commands at the same indices always yield the same results and contents.
//
// cmd is not retained. Apply panics if index is not greater than the last
// applied index (Applied): that is a broken invariant of the caller, which
// must apply each committed entry exactly once, in log order (Raft §5.3).
func (s *Store) Apply(index uint64, cmd []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if index <= s.applied {
		panic(fmt.Sprintf("kv: Apply at index %d is not after the last applied index %d; entries must be applied once, in log order", index, s.applied))
	}
	s.applied = index
	c, err := DecodeCommand(cmd)
	if err != nil {
		return EncodeResult(Result{Err: err.Error()})
	}
	return EncodeResult(s.apply(index, c))
}

// apply applies the validated command c at index; s.mu is held.
func (s *Store) apply(index uint64, c Command) Result {
	cur, found := s.tree.Get(entry{key: c.Key})
	switch c.Op {
	case OpGet:
		return Result{Found: found, Value: cur.value, Version: cur.version}
	case OpPut:
		s.set(cur, found, c.Key, clone(c.Value), index)
		return Result{Found: found, Version: index}
	case OpDelete:
		if found {
			s.tree.Delete(cur)
			s.sum -= entryHash(cur)
		}
		return Result{Found: found, Version: cur.version}
	case OpAppend:
		if n := len(cur.value) + len(c.Value); n > MaxValueBytes {
			return Result{Err: fmt.Errorf("%w: Append would make the value %d bytes; the limit is %d", ErrValueTooLarge, n, MaxValueBytes).Error()}
		}
		v := make([]byte, 0, len(cur.value)+len(c.Value))
		s.set(cur, found, c.Key, append(append(v, cur.value...), c.Value...), index)
		return Result{Found: found, Version: index}
	case OpCAS:
		if !casMatches(c, cur, found) {
			return Result{Found: found, Value: cur.value, Version: cur.version}
		}
		s.set(cur, found, c.Key, clone(c.Value), index)
		return Result{Found: found, Swapped: true, Version: index}
	case OpRange:
		return s.scan(c)
	}
	// DecodeCommand validated the Op.
	panic(fmt.Sprintf("kv: validated command has unknown Op %d", uint8(c.Op)))
}

// set stores value at version for key, replacing cur when found; s.mu is
// held. value must be owned by the store.
func (s *Store) set(cur entry, found bool, key, value []byte, version uint64) {
	e := entry{key: cur.key, value: value, version: version}
	if found {
		s.sum -= entryHash(cur)
	} else {
		e.key = clone(key)
	}
	s.tree.ReplaceOrInsert(e)
	s.sum += entryHash(e)
}

// casMatches reports whether the current state (cur, found) meets the
// expectation of the CAS command c.
func casMatches(c Command, cur entry, found bool) bool {
	switch {
	case c.ExpectAbsent:
		return !found
	case c.ExpectByVersion:
		return cur.version == c.ExpectVersion // an absent key has version 0
	default:
		return found && bytes.Equal(cur.value, c.Expect)
	}
}

// scan answers the Range command c; s.mu is held.
func (s *Store) scan(c Command) Result {
	limit := c.Limit
	if limit == 0 {
		limit = MaxRangeLimit
	}
	var res Result
	size := 0
	s.tree.AscendGreaterOrEqual(entry{key: c.Key}, func(e entry) bool {
		if c.Prefix && !bytes.HasPrefix(e.key, c.Key) ||
			!c.Prefix && len(c.End) > 0 && bytes.Compare(e.key, c.End) >= 0 {
			return false
		}
		n := len(e.key) + len(e.value)
		if len(res.KVs) == limit || len(res.KVs) > 0 && size+n > MaxRangeBytes {
			res.More = true
			return false
		}
		size += n
		res.KVs = append(res.KVs, KeyValue{Key: e.key, Value: e.value, Version: e.version})
		return true
	})
	return res
}

// Get returns key's value and version, and whether the key exists, from
// the local state: a serializable read that may lag the cluster. The
// returned slices belong to the store and must not be modified.
func (s *Store) Get(key []byte) (KeyValue, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.tree.Get(entry{key: key})
	if !ok {
		return KeyValue{}, false
	}
	return KeyValue{Key: e.key, Value: e.value, Version: e.version}, true
}

// State returns the applied index, the number of keys and the Hash, read
// together at one point between applies.
func (s *Store) State() (applied uint64, keys int, hash uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.applied, s.tree.Len(), mix64(s.sum + uint64(s.tree.Len())*0x9e3779b97f4a7c15)
}

// Len returns the number of keys.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tree.Len()
}

// Applied returns the last index passed to Apply, or restored by Restore;
// 0 for a new store.
func (s *Store) Applied() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.applied
}

// Hash returns a 64-bit digest of the contents (every key, value and
// version). It depends only on the contents, not on the history that built
// them, so replicas at the same applied index must report the same Hash;
// a simulator compares them to check convergence. It takes O(1): the store
// maintains it on every write.
func (s *Store) Hash() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return mix64(s.sum + uint64(s.tree.Len())*0x9e3779b97f4a7c15)
}

// clone returns a copy of b that shares no memory with it.
func clone(b []byte) []byte {
	return append([]byte(nil), b...)
}

// Read answers a Get or Range command from the local state, without going
// through the log: a serializable read that may lag the cluster. The
// returned slices belong to the store and must not be modified. Other
// commands, or ones that do not validate, are an error.
func (s *Store) Read(c Command) (Result, error) {
	if c.Op != OpGet && c.Op != OpRange {
		return Result{}, c.invalid("only Get and Range can be read locally")
	}
	if err := c.Validate(); err != nil {
		return Result{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if c.Op == OpRange {
		return s.scan(c), nil
	}
	e, found := s.tree.Get(entry{key: c.Key})
	return Result{Found: found, Value: e.value, Version: e.version}, nil
}
