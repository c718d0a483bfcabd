package jobs

import (
	"context"
	"fmt"
	"time"
)

// Direct jobs are the ones serve runs as they are asked for (the
// synchronous POST /v1/deploys of the CLI and of CI) instead of queueing
// them. They are recorded in the same table as queued jobs, so that `slipway
// jobs` and the console list every deploy with its trigger, caller, status
// and log.

// Begin records j as running from now on, for a caller that runs it itself:
// the scheduler never claims it, and a restart does not repeat it (recovery
// settles it like any job cut short, without queueing it again: its caller
// was answered by the old serve).
func (q *Queue) Begin(ctx context.Context, j *Job) (*Job, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now().UTC()
	j.Direct = true
	j.Status, j.Stage, j.CreatedAt, j.StartedAt = StatusRunning, StageDeploy, now, now
	res, err := q.db.ExecContext(ctx, `INSERT INTO jobs (store, status, created_at, doc) VALUES (?, ?, ?, '{}')`, j.Store, j.Status, now.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("recording a job of %s: %w", j.Store, err)
	}
	seq, err := res.LastInsertId()
	if err != nil {
		return nil, fmt.Errorf("recording a job of %s: %w", j.Store, err)
	}
	j.ID = jobID(seq)
	if err := save(ctx, q.db, j); err != nil {
		return nil, fmt.Errorf("recording job %s: %w", j.ID, err)
	}
	q.logTx(ctx, q.db, j.ID, fmt.Sprintf("started: %s of %s at %s (trigger %s by %s)", j.Kind, j.Store, short(j.Commit), j.Trigger, j.Who))
	q.notify(j.ID)
	return j, nil
}

// Attach records the release a direct job created, as soon as it exists,
// so that recovery after a restart can tell whether it went live.
func (q *Queue) Attach(ctx context.Context, id, release string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	j, err := q.Get(ctx, id)
	if err != nil {
		return err
	}
	j.Release = release
	return save(ctx, q.db, j)
}

// End records how a direct job ended: failed with err, else succeeded.
func (q *Queue) End(ctx context.Context, id, release string, err error) (*Job, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	j, gerr := q.Get(ctx, id)
	if gerr != nil {
		return nil, gerr
	}
	if !j.Direct || j.Status != StatusRunning {
		return j, fmt.Errorf("ending job %s: it is %s and not run directly", id, j.Status)
	}
	j.FinishedAt = time.Now().UTC()
	if release != "" {
		j.Release = release
	}
	j.Status, j.Error = StatusSucceeded, ""
	if err != nil {
		j.Status, j.Error = StatusFailed, err.Error()
	}
	// The last log line goes first: a reader that sees the final status
	// (and stops following) has the whole log.
	q.logTx(ctx, q.db, j.ID, "finished: "+j.Status+errSuffix(j.Error))
	if serr := save(ctx, q.db, j); serr != nil {
		return j, fmt.Errorf("recording the end of job %s: %w", id, serr)
	}
	q.notify(j.ID)
	q.kick() // a job waiting for this store may start now
	return j, nil
}
