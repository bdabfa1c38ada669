package mapreduce

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Errors of the scheduler, returned to workers as gRPC statuses.
var (
	// ErrUnknownWorker: the worker is not registered, or was declared
	// dead; it must register again.
	ErrUnknownWorker = errors.New("mapreduce: unknown worker (declared dead or never registered; register again)")
	// ErrBadRequest: a request names a task that does not exist.
	ErrBadRequest = errors.New("mapreduce: bad request")
)

// kind is a task's kind.
type kind int

const (
	kindMap kind = iota + 1
	kindReduce
)

func (k kind) String() string {
	if k == kindMap {
		return "map"
	}
	return "reduce"
}

// state is a task's state (MapReduce paper §3.2): idle → inProgress →
// completed, and back to idle when every attempt of an in-progress task
// is lost, or when a completed map task's output is lost.
type state int

const (
	idle state = iota + 1
	inProgress
	completed
)

// attempt is one execution of a task on one worker.
type attempt struct {
	id      uint64
	worker  uint64
	started time.Time
}

// task is a map or reduce task. Owned by sched.
type task struct {
	kind  kind
	index int
	split Split // map tasks only
	state state
	// running holds the live attempts: empty unless inProgress, at most
	// two (the original and one backup).
	running []attempt
	// done is the winning attempt once completed.
	done     attempt
	tries    int
	failures int
}

// worker is a registered worker believed alive.
type workerInfo struct {
	addr     string
	lastSeen time.Time
	// cancel lists attempts of this worker that lost or are given up on,
	// told to it at its next heartbeat.
	cancel []uint64
	exited bool // told that the job is over
}

// schedConfig is the scheduler's part of Config.
type schedConfig struct {
	workerTimeout time.Duration
	backupAfter   time.Duration
	backupFactor  float64
	noBackups     bool
	maxFailures   int
}

// sched is the coordinator's scheduler: the state of every task and
// worker. It has no goroutines, no I/O and no clock: callers pass the
// time, and serialize calls.
type sched struct {
	cfg         schedConfig
	maps        []*task
	reduces     []*task
	workers     map[uint64]*workerInfo
	nextWorker  uint64
	nextAttempt uint64
	// took holds the durations of completed attempts, per kind.
	took map[kind][]time.Duration
	err  error // the job failed

	failed, rerun, backups int
	// attempts counts the attempts started, per kind.
	attempts map[kind]int
}

func newSched(cfg schedConfig, splits []Split, reduces int) *sched {
	s := &sched{cfg: cfg, workers: map[uint64]*workerInfo{}, took: map[kind][]time.Duration{}, attempts: map[kind]int{}}
	for i, sp := range splits {
		s.maps = append(s.maps, &task{kind: kindMap, index: i, split: sp, state: idle})
	}
	for i := range reduces {
		s.reduces = append(s.reduces, &task{kind: kindReduce, index: i, state: idle})
	}
	return s
}

// finished reports whether the job is over, and its error.
func (s *sched) finished() (bool, error) {
	if s.err != nil {
		return true, s.err
	}
	return s.countDone(s.reduces) == len(s.reduces), nil
}

func (s *sched) countDone(ts []*task) int {
	n := 0
	for _, t := range ts {
		if t.state == completed {
			n++
		}
	}
	return n
}

func (s *sched) register(addr string, now time.Time) uint64 {
	s.nextWorker++
	s.workers[s.nextWorker] = &workerInfo{addr: addr, lastSeen: now}
	return s.nextWorker
}

func (s *sched) worker(id uint64, now time.Time) (*workerInfo, error) {
	w := s.workers[id]
	if w == nil {
		return nil, ErrUnknownWorker
	}
	w.lastSeen = now
	return w, nil
}

// heartbeat records that worker id is alive and returns the attempts it
// should cancel and whether it should exit.
func (s *sched) heartbeat(id uint64, now time.Time) (cancel []uint64, exit bool, err error) {
	w, err := s.worker(id, now)
	if err != nil {
		return nil, false, err
	}
	cancel, w.cancel = w.cancel, nil
	if done, _ := s.finished(); done {
		w.exited = true
		return cancel, true, nil
	}
	return cancel, false, nil
}

// assignment is what next hands a worker: a task attempt, or nothing.
type assignment struct {
	t   *task
	att attempt
	try int
}

// next picks a task for worker id: an idle map task; once every map task
// is completed, an idle reduce task; or a backup attempt of a straggler
// (§3.6). exit is true when the job is over.
func (s *sched) next(id uint64, now time.Time) (a assignment, ok, exit bool, err error) {
	w, err := s.worker(id, now)
	if err != nil {
		return a, false, false, err
	}
	if done, _ := s.finished(); done {
		w.exited = true
		return a, false, true, nil
	}
	phase := s.maps
	if s.countDone(s.maps) == len(s.maps) {
		phase = s.reduces
	}
	for _, t := range phase {
		if t.state == idle {
			return s.start(t, id, now), true, false, nil
		}
	}
	if t := s.straggler(phase, id, now); t != nil {
		s.backups++
		return s.start(t, id, now), true, false, nil
	}
	return a, false, false, nil
}

func (s *sched) start(t *task, worker uint64, now time.Time) assignment {
	s.nextAttempt++
	t.tries++
	s.attempts[t.kind]++
	att := attempt{id: s.nextAttempt, worker: worker, started: now}
	t.running = append(t.running, att)
	t.state = inProgress
	return assignment{t: t, att: att, try: t.tries}
}

// noEvidence multiplies backupAfter while a phase has no completed attempt.
const noEvidence = 10

// straggler returns the in-progress task of phase whose only attempt, on
// another worker, has run longest, if it has run longer than the backup
// threshold: max(backupAfter, backupFactor × the median time of the
// phase's completed attempts), or noEvidence × backupAfter before any
// completed. It is only called when the phase has no idle task left, that
// is near the end of the phase.
func (s *sched) straggler(phase []*task, worker uint64, now time.Time) *task {
	if s.cfg.noBackups || len(phase) == 0 {
		return nil
	}
	// With no completed attempt to compare to, only a task that runs far
	// longer than backupAfter is a straggler: a phase with fewer tasks
	// than workers must not run every task twice.
	limit := noEvidence * s.cfg.backupAfter
	if d := s.took[phase[0].kind]; len(d) > 0 {
		med := slices.Sorted(slices.Values(d))[len(d)/2]
		limit = max(s.cfg.backupAfter, time.Duration(float64(med)*s.cfg.backupFactor))
	}
	var best *task
	for _, t := range phase {
		if t.state != inProgress || len(t.running) != 1 || t.running[0].worker == worker {
			continue
		}
		if now.Sub(t.running[0].started) > limit && (best == nil || t.running[0].started.Before(best.running[0].started)) {
			best = t
		}
	}
	return best
}

// lookup returns the task of a report, or ErrBadRequest.
func (s *sched) lookup(k kind, index int) (*task, error) {
	ts := s.maps
	if k == kindReduce {
		ts = s.reduces
	} else if k != kindMap {
		return nil, fmt.Errorf("%w: task kind %d", ErrBadRequest, k)
	}
	if index < 0 || index >= len(ts) {
		return nil, fmt.Errorf("%w: no %v task %d (the job has %d)", ErrBadRequest, k, index, len(ts))
	}
	return ts[index], nil
}

// live reports whether att is a live attempt of t run by worker.
func (t *task) live(att, worker uint64) bool {
	i := slices.IndexFunc(t.running, func(a attempt) bool { return a.id == att })
	return i >= 0 && t.running[i].worker == worker
}

// drop removes attempt att from t, making t idle if no attempt is left.
func (t *task) drop(att uint64) {
	t.running = slices.DeleteFunc(t.running, func(a attempt) bool { return a.id == att })
	if len(t.running) == 0 && t.state == inProgress {
		t.state = idle
	}
}

// canWin reports whether attempt att of t, run by worker, would complete t
// now: it is live and t is not completed.
func (s *sched) canWin(t *task, att, worker uint64) bool {
	return s.err == nil && t.state == inProgress && t.live(att, worker)
}

// complete records that attempt att of t finished first. Other attempts
// of t are cancelled. It reports false (and changes nothing but dropping
// the attempt) if the attempt is stale or t is already completed.
func (s *sched) complete(t *task, att, worker uint64, now time.Time) bool {
	if !s.canWin(t, att, worker) {
		t.drop(att)
		return false
	}
	for _, a := range t.running {
		if a.id == att {
			t.done = a
			s.took[t.kind] = append(s.took[t.kind], now.Sub(a.started))
		} else if w := s.workers[a.worker]; w != nil {
			w.cancel = append(w.cancel, a.id)
		}
	}
	t.running = nil
	t.state = completed
	return true
}

// fail records that attempt att of t failed with msg. After maxFailures
// failures of one task, the job fails.
func (s *sched) fail(t *task, att, worker uint64, msg string) {
	if !t.live(att, worker) {
		return // stale: the attempt was already given up on
	}
	s.failed++
	t.failures++
	t.drop(att)
	if t.failures >= s.cfg.maxFailures && s.err == nil {
		what := fmt.Sprintf("%v task %d", t.kind, t.index)
		if t.kind == kindMap {
			what += fmt.Sprintf(" (%s at byte %d)", t.split.File, t.split.Offset)
		}
		s.err = fmt.Errorf("mapreduce: %s failed %d times; last error: %s", what, t.failures, msg)
	}
}

// fetchFailed records that reduce attempt att could not fetch the output
// of attempt lostAtt of map task lost. The map task is re-run if that is
// still its winning attempt; the reduce attempt is dropped (a reducer
// that cannot fetch is not at fault, so it is not counted as a failure).
func (s *sched) fetchFailed(r *task, att, worker uint64, lost *task, lostAtt uint64) {
	if !r.live(att, worker) {
		return
	}
	r.drop(att)
	if lost.state == completed && lost.done.id == lostAtt {
		lost.state = idle
		lost.done = attempt{}
		s.rerun++
	}
}

// tick declares dead every worker not heard from within workerTimeout.
func (s *sched) tick(now time.Time) {
	for id, w := range s.workers {
		if now.Sub(w.lastSeen) > s.cfg.workerTimeout {
			s.lose(id)
		}
	}
}

// lose forgets a dead worker (§3.3): its in-progress attempts are dropped
// (their tasks become idle unless a backup still runs), and its completed
// map tasks are re-run while some reduce task still needs their output.
func (s *sched) lose(id uint64) {
	delete(s.workers, id)
	needMaps := s.countDone(s.reduces) < len(s.reduces)
	for _, t := range append(slices.Clip(s.maps), s.reduces...) {
		for _, a := range slices.Clone(t.running) {
			if a.worker == id {
				t.drop(a.id)
				if t.state == idle {
					s.rerun++
				}
			}
		}
		if t.kind == kindMap && needMaps && t.state == completed && t.done.worker == id {
			t.state = idle
			t.done = attempt{}
			s.rerun++
		}
	}
}

// mapOutputs locates every map task's winning output; it is only called
// when all map tasks are completed.
func (s *sched) mapOutputs() []mapOutput {
	out := make([]mapOutput, len(s.maps))
	for i, t := range s.maps {
		addr := ""
		if w := s.workers[t.done.worker]; w != nil {
			addr = w.addr
		}
		out[i] = mapOutput{task: i, attempt: t.done.id, addr: addr}
	}
	return out
}

type mapOutput struct {
	task    int
	attempt uint64
	addr    string
}

// counts returns the number of idle, in-progress and completed tasks.
func counts(ts []*task) (idleN, running, done int) {
	for _, t := range ts {
		switch t.state {
		case idle:
			idleN++
		case inProgress:
			running++
		case completed:
			done++
		}
	}
	return
}

// allExited reports whether every live worker was told that the job is
// over.
func (s *sched) allExited() bool {
	for _, w := range s.workers {
		if !w.exited {
			return false
		}
	}
	return true
}
