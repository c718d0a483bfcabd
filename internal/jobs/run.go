package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Runner does the work of one job, reporting through run.
type Runner interface {
	Run(ctx context.Context, run *Run) error
}

// ErrCancelled is returned by Run.Stage when a cancel was requested before that safe point.
var ErrCancelled = errors.New("cancelled")

// errShutdown cancels running jobs' contexts when serve stops.
var errShutdown = errors.New("serve is stopping")

// Run is a running job as its runner sees it.
type Run struct {
	q   *Queue
	ctx context.Context
	// Job is a copy of the record at claim time.
	Job Job

	mu      sync.Mutex
	timings map[string]int64
}

// Logf appends a line to the job's log.
func (r *Run) Logf(format string, args ...any) {
	r.q.Log(context.WithoutCancel(r.ctx), r.Job.ID, fmt.Sprintf(format, args...))
}

// Write makes a Run an io.Writer for build output.
func (r *Run) Write(p []byte) (int, error) {
	r.q.Log(context.WithoutCancel(r.ctx), r.Job.ID, string(p))
	return len(p), nil
}

// Time records how long a step took (shown in the job and by the benchmark).
func (r *Run) Time(step string, d time.Duration) {
	r.mu.Lock()
	if r.timings == nil {
		r.timings = map[string]int64{}
	}
	r.timings[step] += d.Milliseconds()
	r.mu.Unlock()
}

// TimeMicros records a step too short for milliseconds, as "<step>-us".
func (r *Run) TimeMicros(step string, d time.Duration) {
	r.mu.Lock()
	if r.timings == nil {
		r.timings = map[string]int64{}
	}
	r.timings[step+"-us"] += d.Microseconds()
	r.mu.Unlock()
}

// Stage records that the job enters a stage: a safe point. It returns
// ErrCancelled if a cancel was requested (or serve is stopping). Once it has
// returned nil for StageDeploy, no cancel stops the job: the runner must go
// on with a context that a cancel does not end.
func (r *Run) Stage(stage string) error {
	q := r.q
	q.mu.Lock()
	defer q.mu.Unlock()
	ctx := context.WithoutCancel(r.ctx)
	j, err := q.Get(ctx, r.Job.ID)
	if err != nil {
		return err
	}
	if j.CancelRequested {
		return ErrCancelled
	}
	if err := context.Cause(r.ctx); err != nil {
		return err
	}
	j.Stage = stage
	r.Job.Stage = stage
	if err := save(ctx, q.db, j); err != nil {
		return err
	}
	q.notify(j.ID)
	return nil
}

// SetRelease records the release the job created.
func (r *Run) SetRelease(id string) {
	q := r.q
	q.mu.Lock()
	defer q.mu.Unlock()
	ctx := context.WithoutCancel(r.ctx)
	if j, err := q.Get(ctx, r.Job.ID); err == nil {
		j.Release = id
		save(ctx, q.db, j)
	}
}

// Scheduler runs waiting jobs.
type Scheduler struct {
	q      *Queue
	runner Runner
	limit  int
	// OnFinish, when set, is called after a job ended (notifications).
	OnFinish func(*Job)

	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup
	done   chan struct{}
	// running counts claimed jobs, guarded by q.mu.
	running int
}

// NewScheduler runs at most limit jobs at once (default 1).
func (q *Queue) NewScheduler(runner Runner, limit int) *Scheduler {
	if limit <= 0 {
		limit = 1
	}
	return &Scheduler{q: q, runner: runner, limit: limit, done: make(chan struct{})}
}

// Start runs the scheduler until Stop.
func (s *Scheduler) Start(ctx context.Context) {
	s.ctx, s.cancel = context.WithCancelCause(context.WithoutCancel(ctx))
	go s.loop()
}

func (s *Scheduler) loop() {
	defer close(s.done)
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		if s.ctx.Err() != nil {
			return
		}
		jobs, err := s.claim()
		if err != nil && s.ctx.Err() == nil {
			time.Sleep(time.Second)
		}
		for _, j := range jobs {
			s.wg.Add(1)
			go s.run(j)
		}
		select {
		case <-s.ctx.Done():
			return
		case <-s.q.wake:
		case <-tick.C:
		}
	}
}

// claim marks the oldest waiting job of each idle store running, up to the limit.
func (s *Scheduler) claim() ([]*Job, error) {
	q := s.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if s.running >= s.limit {
		return nil, nil
	}
	ctx := s.ctx
	busy := map[string]bool{}
	running, err := q.List(ctx, Filter{Status: StatusRunning, Limit: 1000})
	if err != nil {
		return nil, err
	}
	for _, j := range running {
		busy[j.Store] = true
	}
	rows, err := q.db.QueryContext(ctx, `SELECT doc FROM jobs WHERE status = ? ORDER BY seq LIMIT 1000`, StatusWaiting)
	if err != nil {
		return nil, err
	}
	var waiting []*Job
	for rows.Next() {
		j, err := scan(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		waiting = append(waiting, j)
	}
	rows.Close()
	var out []*Job
	for _, j := range waiting {
		if s.running >= s.limit {
			break
		}
		if busy[j.Store] {
			continue
		}
		busy[j.Store] = true
		j.Status, j.StartedAt = StatusRunning, time.Now().UTC()
		if err := save(ctx, q.db, j); err != nil {
			return out, err
		}
		s.running++
		out = append(out, j)
	}
	return out, nil
}

func (s *Scheduler) run(j *Job) {
	defer s.wg.Done()
	q := s.q
	ctx, cancel := context.WithCancelCause(s.ctx)
	defer cancel(nil)
	q.runMu.Lock()
	q.cancels[j.ID] = func() { cancel(ErrCancelled) }
	q.runMu.Unlock()
	run := &Run{q: q, ctx: ctx, Job: *j}
	run.Logf("started: %s of %s at %s (trigger %s by %s)", j.Kind, j.Store, short(j.Commit), j.Trigger, j.Who)
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("job panicked: %v", p)
			}
		}()
		return s.runner.Run(ctx, run)
	}()
	q.runMu.Lock()
	delete(q.cancels, j.ID)
	q.runMu.Unlock()
	fin := s.finish(run, err, context.Cause(ctx))
	if s.OnFinish != nil && fin != nil {
		s.OnFinish(fin)
	}
	q.kick()
}

// finish records how a job ended.
func (s *Scheduler) finish(run *Run, err, cause error) *Job {
	q := s.q
	q.mu.Lock()
	defer q.mu.Unlock()
	s.running--
	ctx := context.WithoutCancel(s.ctx)
	j, gerr := q.Get(ctx, run.Job.ID)
	if gerr != nil {
		return nil
	}
	j.FinishedAt = time.Now().UTC()
	run.mu.Lock()
	j.Timings = run.timings
	run.mu.Unlock()
	var requeue *Job
	switch {
	case err == nil:
		j.Status, j.Error = StatusSucceeded, ""
	case errors.Is(cause, errShutdown) && j.Stage != StageDeploy:
		j.Status, j.Error = StatusInterrupted, "serve stopped before the cutover"
		requeue = requeueOf(j)
	case j.CancelRequested && j.Stage != StageDeploy:
		j.Status, j.Error = StatusCancelled, "stopped at a safe point: nothing was deployed"
	default:
		j.Status, j.Error = StatusFailed, err.Error()
	}
	// The last log line goes first: a reader that sees the final status
	// (and stops following) has the whole log.
	q.logTx(ctx, q.db, j.ID, "finished: "+j.Status+errSuffix(j.Error))
	save(ctx, q.db, j)
	q.notify(j.ID)
	if requeue != nil {
		q.requeueLocked(ctx, j, requeue)
	}
	return j
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return ": " + e
}

// Stop stops claiming, interrupts running jobs that have not reached their
// deploy (they are queued again), and waits for the rest until ctx ends.
func (s *Scheduler) Stop(ctx context.Context) {
	if s.cancel == nil {
		return
	}
	s.cancel(errShutdown)
	<-s.done
	ch := make(chan struct{})
	go func() { s.wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

// requeueOf returns the job to queue again for an interrupted one, nil when it
// was itself a repeat (a job is repeated once) or was run directly (its
// caller was answered by the serve that stopped).
func requeueOf(j *Job) *Job {
	if j.RequeuedFrom != "" || j.Direct {
		return nil
	}
	return &Job{Trigger: j.Trigger, Who: j.Who, Kind: j.Kind, Store: j.Store, Commit: j.Commit, Ref: j.Ref, Reasons: j.Reasons, RequeuedFrom: j.ID}
}

// requeueLocked queues rj unless a newer job of the store already waits (it wins).
func (q *Queue) requeueLocked(ctx context.Context, from, rj *Job) {
	w, err := scan(q.db.QueryRowContext(ctx, `SELECT doc FROM jobs WHERE store = ? AND status = ? LIMIT 1`, rj.Store, StatusWaiting))
	if err == nil && w != nil {
		q.logTx(ctx, q.db, from.ID, "not queued again: "+w.ID+" already waits for this store")
		return
	}
	now := time.Now().UTC()
	rj.Status, rj.CreatedAt = StatusWaiting, now
	res, err := q.db.ExecContext(ctx, `INSERT INTO jobs (store, status, created_at, doc) VALUES (?, ?, ?, '{}')`, rj.Store, rj.Status, now.UnixNano())
	if err != nil {
		return
	}
	seq, _ := res.LastInsertId()
	rj.ID = jobID(seq)
	save(ctx, q.db, rj)
	q.logTx(ctx, q.db, from.ID, "queued again as "+rj.ID)
	q.logTx(ctx, q.db, rj.ID, "repeats "+from.ID+", which was interrupted")
	q.kick()
}

// Recover settles jobs a dead serve left running: a job whose release is
// live (its cutover happened) succeeded; any other was interrupted and is
// queued again once. Call it before Start, after the releases were recovered.
func (q *Queue) Recover(ctx context.Context, liveAt func(store, commit, release string) bool) ([]*Job, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	running, err := q.List(ctx, Filter{Status: StatusRunning, Limit: 1000})
	if err != nil {
		return nil, err
	}
	for _, j := range running {
		j.FinishedAt = time.Now().UTC()
		if j.Stage == StageDeploy && liveAt != nil && liveAt(j.Store, j.Commit, j.Release) {
			j.Status, j.Error = StatusSucceeded, "serve stopped after the cutover; the release is live"
			save(ctx, q.db, j)
			q.logTx(ctx, q.db, j.ID, "finished: succeeded (recovered after a restart: the release is live)")
			continue
		}
		j.Status, j.Error = StatusInterrupted, "serve stopped before the cutover"
		save(ctx, q.db, j)
		q.logTx(ctx, q.db, j.ID, "finished: interrupted (serve stopped before the cutover)")
		if rj := requeueOf(j); rj != nil {
			q.requeueLocked(ctx, j, rj)
		}
	}
	return running, nil
}
