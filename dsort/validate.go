package dsort

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// Report is what Validate found in a sequence of files.
type Report struct {
	Sum        Sum    // of every record in every file
	Duplicates uint64 // records whose key equals the previous record's
	Unordered  uint64 // records whose key is below the previous record's
	// FirstUnordered names the first record out of order, "" if none.
	FirstUnordered string
}

// Sorted reports whether every key was at least the one before it.
func (r Report) Sorted() bool { return r.Unordered == 0 }

// Validate reads the files in sequence, as if concatenated, and reports
// their Sum, whether the keys are in order across them, and how many keys
// repeat. A file whose size is not a multiple of RecordSize is an error.
func Validate(paths ...string) (Report, error) {
	var rep Report
	var prev [KeySize]byte
	have := false
	buf := make([]byte, 40000*RecordSize)
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return rep, fmt.Errorf("dsort: %w", err)
		}
		fi, err := f.Stat()
		if err == nil {
			err = checkSize(p, fi.Size())
		}
		if err != nil {
			f.Close()
			return rep, err
		}
		var rec uint64
		for {
			n, err := io.ReadFull(f, buf)
			if err == io.EOF {
				break
			}
			if err != nil && err != io.ErrUnexpectedEOF {
				f.Close()
				return rep, fmt.Errorf("dsort: read %s: %w", p, err)
			}
			if n%RecordSize != 0 {
				f.Close()
				return rep, fmt.Errorf("%w: %s changed while being read", ErrPartialRecord, p)
			}
			b := buf[:n]
			rep.Sum.Add(b)
			for i := 0; i < n; i += RecordSize {
				k := b[i : i+KeySize]
				if have {
					switch c := bytes.Compare(k, prev[:]); {
					case c == 0:
						rep.Duplicates++
					case c < 0:
						if rep.Unordered == 0 {
							rep.FirstUnordered = fmt.Sprintf("%s record %d", p, rec)
						}
						rep.Unordered++
					}
				}
				copy(prev[:], k)
				have = true
				rec++
			}
			if n < len(buf) {
				break
			}
		}
		f.Close()
	}
	return rep, nil
}
