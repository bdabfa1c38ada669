package dsort

// Records are held in an arena of fixed-size chunks, so that it grows
// without copying and without touching memory it does not use, and so
// that a mapped input can be viewed as chunks without a copy.
// Tests shrink the chunks (setChunkShift) to exercise chunk boundaries on
// small inputs.
var (
	chunkShift   = 18
	chunkRecords = 1 << chunkShift // records per chunk (26.2 MB)
	chunkBytes   = chunkRecords * RecordSize
)

func setChunkShift(s int) {
	chunkShift, chunkRecords = s, 1<<s
	chunkBytes = chunkRecords * RecordSize
}

// arena is a sequence of records in chunks: every chunk but the last holds
// exactly chunkRecords records. Spare chunks past the last used one are
// kept for reuse after reset.
type arena struct {
	chunks [][]byte // chunks[:used]: in use; chunks[used:]: spares with len 0
	used   int
	n      int // records
}

// viewArena returns an arena over data (a whole number of records) without copying.
func viewArena(data []byte) *arena {
	a := &arena{n: len(data) / RecordSize}
	for len(data) > 0 {
		k := min(len(data), chunkBytes)
		a.chunks = append(a.chunks, data[:k:k])
		data = data[k:]
	}
	a.used = len(a.chunks)
	return a
}

// rec returns record i.
func (a *arena) rec(i int) []byte {
	c := a.chunks[i>>chunkShift]
	o := (i & (chunkRecords - 1)) * RecordSize
	return c[o : o+RecordSize : o+RecordSize]
}

// chunk returns chunk k's records and the index of its first record.
func (a *arena) chunk(k int) ([]byte, int) { return a.chunks[k], k << chunkShift }

// bytes returns the size of the records held.
func (a *arena) bytes() int { return a.n * RecordSize }

// space returns free room at the end, up to limit bytes (a multiple of
// RecordSize), adding a chunk when the last is full; nil if limit is 0.
func (a *arena) space(limit int) []byte {
	if limit <= 0 {
		return nil
	}
	if a.used == 0 || len(a.chunks[a.used-1]) == chunkBytes {
		if a.used == len(a.chunks) {
			a.chunks = append(a.chunks, make([]byte, 0, chunkBytes))
		}
		a.used++
	}
	c := a.chunks[a.used-1]
	room := min(chunkBytes-len(c), limit)
	return c[len(c) : len(c)+room]
}

// commit marks n more bytes (a multiple of RecordSize) at the end as records.
func (a *arena) commit(n int) {
	c := a.chunks[a.used-1]
	a.chunks[a.used-1] = c[:len(c)+n]
	a.n += n / RecordSize
}

// reset empties the arena, keeping its chunks for reuse.
func (a *arena) reset() {
	for i := range a.chunks[:a.used] {
		a.chunks[i] = a.chunks[i][:0]
	}
	a.used, a.n = 0, 0
}
