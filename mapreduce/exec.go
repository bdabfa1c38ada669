package mapreduce

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrExecNotAllowed is returned by a worker asked to run an exec job when
// its config does not allow running commands.
var ErrExecNotAllowed = errors.New("mapreduce: this worker does not run exec jobs (start it with --allow-exec)")

// stderrTail is how much of a failed command's stderr its error quotes.
const stderrTail = 2 << 10

// TaskInfo describes the task an App runs in; see TaskFromContext.
type TaskInfo struct {
	// Kind is "map" or "reduce" (a combiner runs in its map task).
	Kind string
	// Index numbers the task within its kind from 0; Attempt is unique in
	// the job; Try counts this task's attempts from 1.
	Index   int
	Attempt uint64
	Try     int
	// Reduces is the job's number of reduce partitions.
	Reduces int
}

type taskKey struct{}

// TaskFromContext returns the task that an App's method runs in.
func TaskFromContext(ctx context.Context) (TaskInfo, bool) {
	ti, ok := ctx.Value(taskKey{}).(TaskInfo)
	return ti, ok
}

func withTask(ctx context.Context, ti TaskInfo) context.Context {
	return context.WithValue(ctx, taskKey{}, ti)
}

// Exec runs a job's map and reduce as shell commands (sh -c), in the
// manner of Hadoop Streaming. The map command reads its split's lines on
// stdin; the reduce (and the optional combine) command reads the sorted
// partition as "key<TAB>value" lines. All of them write "key<TAB>value"
// lines on stdout; a line without a tab is a key with an empty value.
// Keys and values must not contain tabs or newlines. The commands see the
// environment variables MR_KIND, MR_TASK, MR_TRY, MR_ATTEMPT, MR_REDUCES
// and, for a map, MR_FILE, MR_OFFSET and MR_LENGTH. A command that exits
// with a non-zero status fails the task; its error quotes the end of the
// command's stderr.
type Exec struct {
	MapCommand, ReduceCommand string
}

type execCombine struct {
	Exec
	combine string
}

func newExec(job Job) (App, error) {
	if job.MapCommand == "" || job.ReduceCommand == "" {
		return nil, errors.New("mapreduce: exec needs a map and a reduce command (--map and --reduce)")
	}
	e := Exec{MapCommand: job.MapCommand, ReduceCommand: job.ReduceCommand}
	if job.CombineCommand != "" {
		return execCombine{e, job.CombineCommand}, nil
	}
	return e, nil
}

// Map runs MapCommand on the split.
func (e Exec) Map(ctx context.Context, in Split, r io.Reader, emit Emit) error {
	env := []string{"MR_FILE=" + in.File, "MR_OFFSET=" + strconv.FormatInt(in.Offset, 10), "MR_LENGTH=" + strconv.FormatInt(in.Length, 10)}
	return runCommand(ctx, "map", e.MapCommand, env, r, emit)
}

// Reduce runs ReduceCommand on the partition.
func (e Exec) Reduce(ctx context.Context, pairs iter.Seq2[string, string], emit Emit) error {
	return runPairs(ctx, "reduce", e.ReduceCommand, pairs, emit)
}

// Combine runs the combine command on a map task's partition.
func (e execCombine) Combine(ctx context.Context, pairs iter.Seq2[string, string], emit Emit) error {
	return runPairs(ctx, "combine", e.combine, pairs, emit)
}

// runPairs feeds pairs to the command as tab-separated lines.
func runPairs(ctx context.Context, what, command string, pairs iter.Seq2[string, string], emit Emit) error {
	pr, pw := io.Pipe()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		bw := bufio.NewWriterSize(pw, 64<<10)
		for k, v := range pairs {
			bw.WriteString(k)
			bw.WriteByte('\t')
			bw.WriteString(v)
			if err := bw.WriteByte('\n'); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(bw.Flush())
	}()
	err := runCommand(ctx, what, command, nil, pr, emit)
	pr.CloseWithError(errors.New("mapreduce: command finished")) // unblocks the writer
	wg.Wait()
	return err
}

// runCommand runs command with stdin and emits the pairs of its stdout.
func runCommand(ctx context.Context, what, command string, env []string, stdin io.Reader, emit Emit) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Env = append(append(os.Environ(), taskEnv(ctx)...), env...)
	cmd.Stdin = stdin
	var stderr tailBuffer
	cmd.Stderr = &stderr
	setProcGroup(cmd)
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("mapreduce: exec %s command: %w", what, err)
	}
	perr := parsePairs(out, emit)
	if perr != nil {
		cancel()
	}
	werr := cmd.Wait()
	switch {
	case ctx.Err() != nil && perr == nil:
		return ctx.Err()
	case perr != nil:
		return fmt.Errorf("mapreduce: exec %s command %q: %w", what, command, perr)
	case werr != nil:
		msg := strings.TrimSpace(stderr.String())
		if msg != "" {
			msg = ": " + msg
		}
		return fmt.Errorf("mapreduce: exec %s command %q failed: %v%s", what, command, werr, msg)
	}
	return nil
}

func taskEnv(ctx context.Context) []string {
	ti, ok := TaskFromContext(ctx)
	if !ok {
		return nil
	}
	return []string{"MR_KIND=" + ti.Kind, "MR_TASK=" + strconv.Itoa(ti.Index), "MR_TRY=" + strconv.Itoa(ti.Try),
		"MR_ATTEMPT=" + strconv.FormatUint(ti.Attempt, 10), "MR_REDUCES=" + strconv.Itoa(ti.Reduces)}
}

// parsePairs reads "key<TAB>value" lines, bounded by MaxRecord.
func parsePairs(r io.Reader, emit Emit) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 2*MaxRecord+2)
	for sc.Scan() {
		k, v, _ := strings.Cut(strings.TrimSuffix(sc.Text(), "\r"), "\t")
		if len(k) > MaxRecord || len(v) > MaxRecord {
			return fmt.Errorf("output line has a key or value over %d bytes", MaxRecord)
		}
		if err := emit(k, v); err != nil {
			return err
		}
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		return fmt.Errorf("output line longer than %d bytes", 2*MaxRecord+1)
	}
	return sc.Err()
}

// tailBuffer keeps the last stderrTail bytes written to it.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > stderrTail {
		t.b = append([]byte(nil), t.b[len(t.b)-stderrTail:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.ToValidUTF8(t.b, nil))
}
