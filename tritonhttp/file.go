package tritonhttp

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Cache bounds (docs/tritonhttp.md, "Caching and its staleness").
const (
	maxCachedFile  = 64 << 10 // files up to this size are kept in memory
	maxCacheBytes  = 64 << 20 // bytes of file content held at most
	maxCacheFiles  = 4096     // entries held at most
	cacheStaleness = time.Second
)

// errNotFound covers every path that does not name a servable file or
// directory inside the site's root: missing, outside after symlinks, not a
// regular file, unreadable.
var errNotFound = errors.New("tritonhttp: not found")

// entry is what a (site, path) resolved to. It is immutable once stored,
// except checked.
type entry struct {
	resolved string      // absolute, symlinks resolved, inside the root
	info     os.FileInfo // of resolved when the entry was made
	dir      bool        // a directory: answered 301 to the slash form
	size     int64
	modTime  time.Time // to the second, as Last-Modified says
	lastMod  []byte    // IMF-fixdate of modTime
	etag     []byte    // strong entity-tag: "mtime-size" in hex, mtime in nanoseconds
	ctype    string
	body     []byte       // the content when size <= maxCachedFile and it fitted in the cache
	checked  atomic.Int64 // unix nanoseconds of the last validation (the cache's clock)
}

// fileCache maps site-prefixed cleaned paths to entries, re-validating an
// entry when it is older than cacheStaleness. 404s are never stored.
type fileCache struct {
	now      func() time.Time
	maxFiles int   // entries held at most (maxCacheFiles)
	maxBytes int64 // content bytes held at most (maxCacheBytes)
	mu       sync.RWMutex
	m        map[string]*entry // guarded by mu
	bytes    int64             // content bytes held, guarded by mu
}

func newFileCache(now func() time.Time) *fileCache {
	return &fileCache{now: now, maxFiles: maxCacheFiles, maxBytes: maxCacheBytes, m: make(map[string]*entry)}
}

// get returns the entry for key (the site id then clean), resolving clean
// under s when the cached entry is missing or stale.
func (fc *fileCache) get(s *site, key, clean []byte) (*entry, error) {
	now := fc.now().UnixNano()
	fc.mu.RLock()
	e := fc.m[string(key)]
	fc.mu.RUnlock()
	if e != nil && now-e.checked.Load() < int64(cacheStaleness) {
		return e, nil
	}
	real, fi, err := resolve(s, string(clean))
	if err != nil {
		if e != nil {
			fc.remove(key, e)
		}
		return nil, err
	}
	if e != nil && e.resolved == real && os.SameFile(e.info, fi) && e.size == fi.Size() && e.info.ModTime().Equal(fi.ModTime()) {
		e.checked.Store(now)
		return e, nil
	}
	ne, err := newEntry(real, fi, fc.wantBody(fi))
	if err != nil {
		return nil, err
	}
	ne.checked.Store(now)
	fc.store(string(key), ne, e)
	return ne, nil
}

// wantBody reports whether a file of this kind and size should be held in
// memory.
func (fc *fileCache) wantBody(fi os.FileInfo) bool {
	if !fi.Mode().IsRegular() || fi.Size() > maxCachedFile {
		return false
	}
	fc.mu.RLock()
	defer fc.mu.RUnlock()
	return fc.bytes+fi.Size() <= fc.maxBytes
}

func (fc *fileCache) store(key string, ne, old *entry) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	cur, ok := fc.m[key]
	if !ok && len(fc.m) >= fc.maxFiles {
		return
	}
	if ok {
		fc.bytes -= int64(len(cur.body))
	}
	fc.m[key] = ne
	fc.bytes += int64(len(ne.body))
}

func (fc *fileCache) remove(key []byte, e *entry) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.m[string(key)] == e {
		delete(fc.m, string(key))
		fc.bytes -= int64(len(e.body))
	}
}

// resolve maps a cleaned path (starting with '/') to a file or directory
// under the site's root. Symlinks are followed, but the result must lie
// inside the root (RFC 9110 §17.3), and only regular files and directories
// are served.
func resolve(s *site, clean string) (string, os.FileInfo, error) {
	full := filepath.Join(s.root, filepath.FromSlash(clean))
	real, err := filepath.EvalSymlinks(full)
	if err != nil || !within(real, s.root) {
		return "", nil, errNotFound
	}
	fi, err := os.Stat(real)
	if err != nil || !fi.Mode().IsRegular() && !fi.IsDir() {
		return "", nil, errNotFound
	}
	return real, fi, nil
}

// within reports whether path is root or lies below it; both are clean and
// absolute.
func within(path, root string) bool {
	if path == root {
		return true
	}
	if root == string(filepath.Separator) {
		return strings.HasPrefix(path, root)
	}
	return strings.HasPrefix(path, root) && path[len(root)] == filepath.Separator
}

// newEntry builds the entry of a resolved path, reading the content when
// withBody.
func newEntry(real string, fi os.FileInfo, withBody bool) (*entry, error) {
	e := &entry{resolved: real, info: fi, dir: fi.IsDir()}
	if e.dir {
		return e, nil
	}
	if withBody {
		f, err := openFile(real)
		if err != nil {
			return nil, errNotFound
		}
		defer f.Close()
		if fi, err = f.Stat(); err != nil || !fi.Mode().IsRegular() || fi.Size() > maxCachedFile {
			return nil, errNotFound
		}
		body := make([]byte, fi.Size())
		if _, err := io.ReadFull(f, body); err != nil {
			return nil, errNotFound
		}
		e.info, e.body = fi, body
	}
	e.setInfo(fi)
	return e, nil
}

func (e *entry) setInfo(fi os.FileInfo) {
	e.size = fi.Size()
	e.modTime = fi.ModTime().Truncate(time.Second)
	e.lastMod = appendHTTPDate(nil, e.modTime)
	e.etag = makeETag(fi.ModTime(), e.size)
	e.ctype = contentType(e.resolved)
}

// openFile opens a regular file for reading without blocking on a FIFO that
// may have replaced it.
func openFile(name string) (*os.File, error) {
	return os.OpenFile(name, os.O_RDONLY|openNonblock, 0)
}

// byteRange is one satisfiable range: [start, end] inclusive.
type byteRange struct{ start, end int64 }

// Outcomes of parseRange.
const (
	rangeNone = iota + 1 // no usable Range: send the whole file
	rangeOK
	rangeUnsatisfiable
)

// parseRange reads a Range value for a representation of size bytes. Only a
// single bytes range is honoured; several ranges, or syntax we do not read,
// are ignored, which RFC 9110 §14.2 allows.
func parseRange(v []byte, size int64) (byteRange, int) {
	if len(v) < 6 || !equalFold(v[:6], "bytes=") {
		return byteRange{}, rangeNone
	}
	spec := trimOWS(v[6:])
	dash := -1
	for i, c := range spec {
		if c == ',' {
			return byteRange{}, rangeNone
		}
		if c == '-' && dash < 0 {
			dash = i
		}
	}
	if dash < 0 {
		return byteRange{}, rangeNone
	}
	first, last := spec[:dash], spec[dash+1:]
	if len(first) == 0 { // suffix range: the last n bytes (RFC 9110 §14.1.2)
		n, ok := parseLength(last)
		if !ok {
			return byteRange{}, rangeNone
		}
		if n == 0 || size == 0 {
			return byteRange{}, rangeUnsatisfiable
		}
		return byteRange{max(0, size-n), size - 1}, rangeOK
	}
	start, ok := parseLength(first)
	if !ok {
		return byteRange{}, rangeNone
	}
	end := size - 1
	if len(last) > 0 {
		e, ok := parseLength(last)
		if !ok || e < start {
			return byteRange{}, rangeNone
		}
		end = min(e, size-1)
	}
	if start >= size {
		return byteRange{}, rangeUnsatisfiable
	}
	return byteRange{start, end}, rangeOK
}
