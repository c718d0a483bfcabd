package auth

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
)

// auditOp is one write of the audit trail: a call's first row, its end, or
// (neither) a barrier that List waits on.
type auditOp struct {
	insert *Entry
	update Entry
	isEnd  bool
	// done receives the transaction's outcome; nil: nobody waits.
	done chan error
}

func (a *Audit) submit(op auditOp) {
	if op.insert == nil && op.done == nil {
		op.isEnd = true
	}
	a.w.Add(op)
}

// sync waits until every write queued before it is committed.
func (a *Audit) sync(ctx context.Context) error {
	done := make(chan error, 1)
	a.submit(auditOp{done: done})
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flush writes one batch and tells its waiters.
func (a *Audit) flush(ops []auditOp) {
	err := a.write(ops)
	for _, op := range ops {
		switch {
		case op.done != nil:
			op.done <- err
		case err != nil:
			a.logger().Error("audit", "error", fmt.Errorf("recording the end of %s %s: %w", op.update.Method, op.update.Path, err))
		}
	}
}

func (a *Audit) logger() *slog.Logger {
	if a.Log != nil {
		return a.Log
	}
	return slog.Default()
}

// write commits a batch in one transaction (a barrier-only batch writes nothing).
func (a *Audit) write(ops []auditOp) error {
	n := 0
	for _, op := range ops {
		if op.insert != nil || op.isEnd {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	ctx := context.Background()
	return a.st.Write(ctx, func(tx *sql.Tx) error { return writeOps(ctx, tx, ops) })
}

func writeOps(ctx context.Context, tx *sql.Tx, ops []auditOp) error {
	for _, op := range ops {
		switch {
		case op.insert != nil:
			e := op.insert
			res, err := tx.ExecContext(ctx, `INSERT INTO audit (at, actor, via, remote, method, path) VALUES (?,?,?,?,?,?)`,
				e.At.UnixNano(), e.Actor, e.Via, e.Remote, e.Method, clip(e.Path, 500))
			if err != nil {
				return err
			}
			if e.ID, err = res.LastInsertId(); err != nil {
				return err
			}
		case op.isEnd:
			e := op.update
			if _, err := tx.ExecContext(ctx, `UPDATE audit SET store=?, action=?, status=?, took_ns=?, error=? WHERE id=?`,
				clip(e.Store, 200), clip(e.Action, 500), e.Status, int64(e.Took), clip(e.Error, 1000), e.ID); err != nil {
				return err
			}
		}
	}
	return nil
}
