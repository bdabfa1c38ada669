package mapreduce

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// ErrUnknownApp is wrapped by the error for a job whose app is not known.
var ErrUnknownApp = errors.New("mapreduce: unknown app")

// Emit receives the pairs an app's Map, Reduce or Combine produces. A
// non-nil error (a limit was hit, or the task was cancelled) must be
// returned by the caller.
type Emit func(key, value string) error

// Split is a byte range of one input file; it starts at the beginning of
// a line and ends after a newline or at the end of the file.
type Split struct {
	File   string
	Offset int64
	Length int64
}

// App is a MapReduce program. Implementations must be safe to use from
// one task at a time; a worker builds a fresh App for each job.
type App interface {
	// Map reads the split's bytes from r and emits intermediate pairs.
	Map(ctx context.Context, in Split, r io.Reader, emit Emit) error
	// Reduce receives one partition's pairs sorted by key (equal keys
	// adjacent) and emits the output pairs, written as lines "key value".
	Reduce(ctx context.Context, pairs iter.Seq2[string, string], emit Emit) error
}

// Combiner is an optional interface of an App: Combine runs on a map
// task's sorted output for one partition before it is written, and must
// emit pairs whose reduce gives the same result (MapReduce paper §4.3).
type Combiner interface {
	Combine(ctx context.Context, pairs iter.Seq2[string, string], emit Emit) error
}

// AppFactory builds the App of a job.
type AppFactory func(job Job) (App, error)

// Builtin returns the built-in apps by name: wc, grep, index and exec.
func Builtin() map[string]AppFactory {
	return map[string]AppFactory{
		"wc":    func(Job) (App, error) { return WordCount{}, nil },
		"index": func(Job) (App, error) { return Index{}, nil },
		"grep":  newGrep,
		"exec":  newExec,
	}
}

// Group calls f once per key of sorted pairs with the key's values.
func Group(pairs iter.Seq2[string, string], f func(key string, values []string) error) error {
	var key string
	var values []string
	for k, v := range pairs {
		if len(values) > 0 && k != key {
			if err := f(key, values); err != nil {
				return err
			}
			values = values[:0]
		}
		key = k
		values = append(values, v)
	}
	if len(values) > 0 {
		return f(key, values)
	}
	return nil
}

// lines calls f for every line of r (without its newline), refusing lines
// longer than MaxRecord.
func lines(ctx context.Context, r io.Reader, f func(line string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxRecord+1)
	for n := 0; sc.Scan(); n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if err := f(strings.TrimSuffix(sc.Text(), "\r")); err != nil {
			return err
		}
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		return fmt.Errorf("mapreduce: a line is longer than %d bytes", MaxRecord)
	}
	return sc.Err()
}

// WordCount counts words: maximal runs of letters and digits. Its output
// lines are "word count".
type WordCount struct{}

// Map emits (word, "1") for every word.
func (WordCount) Map(ctx context.Context, _ Split, r io.Reader, emit Emit) error {
	return lines(ctx, r, func(line string) error {
		for _, w := range Words(line) {
			if err := emit(w, "1"); err != nil {
				return err
			}
		}
		return nil
	})
}

// Words splits s into maximal runs of letters and digits.
func Words(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

// Reduce sums the counts of each word.
func (WordCount) Reduce(_ context.Context, pairs iter.Seq2[string, string], emit Emit) error {
	return sumCounts(pairs, emit)
}

// Combine sums counts on the map side.
func (WordCount) Combine(_ context.Context, pairs iter.Seq2[string, string], emit Emit) error {
	return sumCounts(pairs, emit)
}

func sumCounts(pairs iter.Seq2[string, string], emit Emit) error {
	return Group(pairs, func(key string, values []string) error {
		var n uint64
		for _, v := range values {
			c, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return fmt.Errorf("mapreduce: wc: count %q of %q: %w", v, key, err)
			}
			n += c
		}
		return emit(key, strconv.FormatUint(n, 10))
	})
}

// Index is an inverted index: its output lines are "word n file1,file2,..."
// with the n files the word occurs in, sorted.
type Index struct{}

// Map emits (word, file) once per word of the split.
func (Index) Map(ctx context.Context, in Split, r io.Reader, emit Emit) error {
	seen := map[string]bool{}
	err := lines(ctx, r, func(line string) error {
		for _, w := range Words(line) {
			seen[w] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	for w := range seen {
		if err := emit(w, in.File); err != nil {
			return err
		}
	}
	return nil
}

// Reduce lists each word's files.
func (Index) Reduce(_ context.Context, pairs iter.Seq2[string, string], emit Emit) error {
	return Group(pairs, func(key string, values []string) error {
		files := slices.Compact(slices.Sorted(slices.Values(values)))
		return emit(key, strconv.Itoa(len(files))+" "+strings.Join(files, ","))
	})
}

// Grep finds the lines matching a regular expression (Job.GrepPattern).
// Its output lines are "file offset:line", offset being the line's byte
// offset in the file as `grep -b` prints it, in file order.
type Grep struct{ re *regexp.Regexp }

func newGrep(job Job) (App, error) {
	if job.GrepPattern == "" {
		return nil, errors.New("mapreduce: grep needs a pattern (--pattern)")
	}
	re, err := regexp.Compile(job.GrepPattern)
	if err != nil {
		return nil, fmt.Errorf("mapreduce: grep pattern: %w", err)
	}
	return Grep{re}, nil
}

// Map emits (file, "offset:line") for every matching line.
func (g Grep) Map(ctx context.Context, in Split, r io.Reader, emit Emit) error {
	off := in.Offset
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 0; ; n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		line, err := readLine(br)
		if len(line) > 0 {
			text := strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
			if g.re.MatchString(text) {
				if err := emit(in.File, strconv.FormatInt(off, 10)+":"+text); err != nil {
					return err
				}
			}
			off += int64(len(line))
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readLine reads one line with its newline, refusing lines over MaxRecord.
func readLine(br *bufio.Reader) (string, error) {
	var b []byte
	for {
		frag, err := br.ReadSlice('\n')
		b = append(b, frag...)
		if len(b) > MaxRecord+1 {
			return "", fmt.Errorf("mapreduce: a line is longer than %d bytes", MaxRecord)
		}
		if err != bufio.ErrBufferFull {
			return string(b), err
		}
	}
}

// Reduce emits each file's matches in offset order.
func (Grep) Reduce(_ context.Context, pairs iter.Seq2[string, string], emit Emit) error {
	return Group(pairs, func(key string, values []string) error {
		off := func(v string) int64 {
			i := strings.IndexByte(v, ':')
			if i < 0 {
				return 0
			}
			n, _ := strconv.ParseInt(v[:i], 10, 64)
			return n
		}
		sort.SliceStable(values, func(i, j int) bool { return off(values[i]) < off(values[j]) })
		for _, v := range values {
			if err := emit(key, v); err != nil {
				return err
			}
		}
		return nil
	})
}
