package mapreduce

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/flotilla-dev/flotilla/proto/mrpb"
)

// ErrInvalidJob is wrapped by errors about a job that cannot run.
var ErrInvalidJob = errors.New("mapreduce: invalid job")

// Job says which program runs and how many reduce partitions it makes.
type Job struct {
	// App names the program: a built-in (wc, grep, index), exec, or an
	// app registered in Config.Apps and WorkerConfig.Apps.
	App string
	// Reduces is R, the number of reduce partitions and output files.
	Reduces int
	// GrepPattern is the grep app's regular expression (RE2 syntax).
	GrepPattern string
	// MapCommand, ReduceCommand and CombineCommand are the exec app's
	// shell commands; CombineCommand is optional.
	MapCommand, ReduceCommand, CombineCommand string
	// NoCombine turns off an app's combiner.
	NoCombine bool
}

// MaxReduces bounds Job.Reduces.
const MaxReduces = 10000

// newApp builds the job's App from apps, checking the job.
func newApp(apps map[string]AppFactory, job Job) (App, error) {
	if job.Reduces < 1 || job.Reduces > MaxReduces {
		return nil, fmt.Errorf("%w: the number of reduces must be 1 to %d, got %d", ErrInvalidJob, MaxReduces, job.Reduces)
	}
	f := apps[job.App]
	if f == nil {
		names := make([]string, 0, len(apps))
		for n := range apps {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("%w %q (choose one of %v)", ErrUnknownApp, job.App, names)
	}
	app, err := f(job)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidJob, err)
	}
	return app, nil
}

func (j Job) proto() *mrpb.JobSpec {
	return &mrpb.JobSpec{App: j.App, Reduces: uint32(j.Reduces), GrepPattern: j.GrepPattern,
		MapCommand: j.MapCommand, ReduceCommand: j.ReduceCommand, CombineCommand: j.CombineCommand, NoCombine: j.NoCombine}
}

func jobFromProto(p *mrpb.JobSpec) Job {
	return Job{App: p.GetApp(), Reduces: int(p.GetReduces()), GrepPattern: p.GetGrepPattern(),
		MapCommand: p.GetMapCommand(), ReduceCommand: p.GetReduceCommand(), CombineCommand: p.GetCombineCommand(), NoCombine: p.GetNoCombine()}
}

// DefaultSplitSize is the target size of a map task's input split.
const DefaultSplitSize = 16 << 20

// planSplits cuts each file into splits of about size bytes, each ending
// just after a newline (or at the end of the file), so that no line is cut.
// An empty file gives no split.
func planSplits(files []string, size int64) ([]Split, error) {
	var out []Split
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("%w: input: %w", ErrInvalidJob, err)
		}
		splits, err := splitFile(f, name, size)
		f.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, splits...)
	}
	return out, nil
}

func splitFile(f *os.File, name string, size int64) ([]Split, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: input: %w", ErrInvalidJob, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: input %s is not a regular file", ErrInvalidJob, name)
	}
	var out []Split
	total := st.Size()
	for start := int64(0); start < total; {
		end := start + size
		if end >= total {
			end = total
		} else {
			n, err := nextNewline(f, end)
			if err != nil {
				return nil, fmt.Errorf("%w: input %s: %w", ErrInvalidJob, name, err)
			}
			end = min(end+n, total)
		}
		out = append(out, Split{File: name, Offset: start, Length: end - start})
		start = end
	}
	return out, nil
}

// nextNewline returns how many bytes from off up to and including the
// next newline; a line longer than MaxRecord is an error.
func nextNewline(f *os.File, off int64) (int64, error) {
	br := bufio.NewReaderSize(io.NewSectionReader(f, off, MaxRecord+1), 64<<10)
	var n int64
	for {
		b, err := br.ReadSlice('\n')
		n += int64(len(b))
		if err == nil {
			return n, nil
		}
		if err == io.EOF {
			if n > MaxRecord {
				return 0, fmt.Errorf("a line at byte %d is longer than %d bytes", off, MaxRecord)
			}
			return n, nil // the end of the file
		}
		if err != bufio.ErrBufferFull {
			return 0, err
		}
	}
}
