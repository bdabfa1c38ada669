package dsort

import (
	"fmt"
	"os"
	"syscall"
)

// mapFile maps f's first size bytes read-only, faulting the pages in up
// front; release unmaps them.
func mapFile(f *os.File, size int64) (data []byte, release func(), err error) {
	if size == 0 {
		return nil, func() {}, nil
	}
	if int64(int(size)) != size {
		return nil, nil, fmt.Errorf("dsort: %s is too large to map", f.Name())
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		return nil, nil, fmt.Errorf("dsort: map %s: %w", f.Name(), err)
	}
	return b, func() { _ = syscall.Munmap(b) }, nil
}
