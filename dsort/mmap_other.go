//go:build !linux

package dsort

import (
	"io"
	"os"
)

// mapFile reads f's first size bytes into memory; release drops them.
func mapFile(f *os.File, size int64) (data []byte, release func(), err error) {
	b := make([]byte, size)
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, size), b); err != nil {
		return nil, nil, err
	}
	return b, func() {}, nil
}
