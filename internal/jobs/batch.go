package jobs

import (
	"context"
	"database/sql"
)

// A burst of webhook deliveries makes many small writes at once. Each one
// alone is a transaction behind the queue's lock (fifty in a row under a
// burst); batched, the writes waiting at one moment share one transaction,
// each inside its own savepoint, so one that fails leaves the others intact.

// batchOp is one caller's part of a batch: fn writes in tx; after runs once
// the batch is committed (wake-ups that must not see uncommitted rows).
type batchOp struct {
	fn    func(ctx context.Context, tx *sql.Tx) (after func(), err error)
	after func()
	err   error
	done  chan error
}

// inBatch runs fn in the next batch's transaction and returns when that is committed.
func (q *Queue) inBatch(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) (func(), error)) error {
	op := &batchOp{fn: fn, done: make(chan error, 1)}
	q.batch.Add(op)
	select {
	case err := <-op.done:
		return err
	case <-ctx.Done():
		// The write may still happen; callers treat this as "not known".
		return ctx.Err()
	}
}

// flushBatch writes one batch and tells its callers; an op's after runs
// only once the batch is committed.
func (q *Queue) flushBatch(ops []*batchOp) {
	err := q.writeBatch(ops)
	for _, op := range ops {
		if err != nil {
			op.done <- err
			continue
		}
		if op.err == nil && op.after != nil {
			op.after()
		}
		op.done <- op.err
	}
}

func (q *Queue) writeBatch(ops []*batchOp) error {
	ctx := context.Background()
	q.mu.Lock()
	defer q.mu.Unlock()
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, op := range ops {
		if _, err := tx.ExecContext(ctx, `SAVEPOINT op`); err != nil {
			return err
		}
		op.after, op.err = op.fn(ctx, tx)
		if op.err != nil {
			if _, err := tx.ExecContext(ctx, `ROLLBACK TO op`); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `RELEASE op`); err != nil {
			return err
		}
	}
	return tx.Commit()
}
