package mapreduce

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
)

// MaxRecord bounds the key and the value of one intermediate record, and
// one line of input or of an exec command's output.
const MaxRecord = 1 << 20

// ErrCorrupt is wrapped by errors about an intermediate file that does not
// decode.
var ErrCorrupt = errors.New("mapreduce: corrupt intermediate data")

// A KV is one key/value pair.
type KV struct {
	Key, Value string
}

// writeRecord appends one record: uvarint key length, key, uvarint value
// length, value.
func writeRecord(w *bufio.Writer, kv KV) error {
	var b [binary.MaxVarintLen64]byte
	w.Write(b[:binary.PutUvarint(b[:], uint64(len(kv.Key)))])
	w.WriteString(kv.Key)
	w.Write(b[:binary.PutUvarint(b[:], uint64(len(kv.Value)))])
	_, err := w.WriteString(kv.Value)
	return err
}

// recordReader decodes records written by writeRecord, refusing lengths
// over MaxRecord before allocating.
type recordReader struct {
	r   *bufio.Reader
	err error
}

func newRecordReader(r io.Reader) *recordReader {
	return &recordReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next record; ok is false at the end or on an error
// (see err).
func (rr *recordReader) next() (kv KV, ok bool) {
	if rr.err != nil {
		return KV{}, false
	}
	k, err := rr.field()
	if err == io.EOF {
		return KV{}, false
	}
	if err != nil {
		rr.err = err
		return KV{}, false
	}
	v, err := rr.field()
	if err != nil {
		if err == io.EOF {
			err = fmt.Errorf("%w: record cut after its key", ErrCorrupt)
		}
		rr.err = err
		return KV{}, false
	}
	return KV{k, v}, true
}

func (rr *recordReader) field() (string, error) {
	n, err := binary.ReadUvarint(rr.r)
	if err != nil {
		if err == io.EOF {
			return "", io.EOF
		}
		return "", fmt.Errorf("%w: length: %v", ErrCorrupt, err)
	}
	if n > MaxRecord {
		return "", fmt.Errorf("%w: field of %d bytes exceeds the limit of %d", ErrCorrupt, n, MaxRecord)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(rr.r, b); err != nil {
		return "", fmt.Errorf("%w: field cut short: %v", ErrCorrupt, err)
	}
	return string(b), nil
}

// merger merges sorted intermediate files by key; records with equal keys
// keep the order of the files.
type merger struct {
	files []*os.File
	h     mergeHeap
	err   error
}

type mergeItem struct {
	kv  KV
	src int
	rr  *recordReader
}

type mergeHeap []*mergeItem

func (h mergeHeap) Len() int { return len(h) }
func (h mergeHeap) Less(i, j int) bool {
	if h[i].kv.Key != h[j].kv.Key {
		return h[i].kv.Key < h[j].kv.Key
	}
	return h[i].src < h[j].src
}
func (h mergeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)   { *h = append(*h, x.(*mergeItem)) }
func (h *mergeHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// openMerger opens the files at paths for merging. Close releases them.
func openMerger(paths []string) (*merger, error) {
	m := &merger{}
	for i, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			m.Close()
			return nil, err
		}
		m.files = append(m.files, f)
		rr := newRecordReader(f)
		if kv, ok := rr.next(); ok {
			m.h = append(m.h, &mergeItem{kv, i, rr})
		} else if rr.err != nil {
			m.Close()
			return nil, fmt.Errorf("%s: %w", p, rr.err)
		}
	}
	heap.Init(&m.h)
	return m, nil
}

// All yields the merged records in key order; after it stops, Err reports
// a decoding error if there was one.
func (m *merger) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for m.h.Len() > 0 && m.err == nil {
			it := m.h[0]
			kv := it.kv
			if next, ok := it.rr.next(); ok {
				it.kv = next
				heap.Fix(&m.h, 0)
			} else {
				if it.rr.err != nil {
					m.err = it.rr.err
				}
				heap.Pop(&m.h)
			}
			if !yield(kv.Key, kv.Value) {
				return
			}
		}
	}
}

// Err returns the first decoding error met by All.
func (m *merger) Err() error { return m.err }

// Close closes the files.
func (m *merger) Close() {
	for _, f := range m.files {
		f.Close()
	}
}
