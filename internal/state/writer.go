package state

import (
	"context"
	"database/sql"
	"fmt"
)

// This process's writes to the state go one at a time through a queue in Go
// (a one-slot semaphore) instead of meeting in SQLite. SQLite lets one
// writer in and makes the others retry through its busy handler, which
// sleeps between tries (1 ms growing to 100 ms): with 30 deploys writing at
// once the database sat idle while writers slept, and a late writer could
// wait out several of those sleeps. A queued writer starts the moment the
// one before it commits. Writers in other processes (a CLI opening the
// state directly) still meet busy_timeout, which stays as the fallback.
//
// Reads do not queue: WAL lets them run beside the writer.

// beginWrite waits for this process's write slot (or ctx) and returns its release.
func (d *DB) beginWrite(ctx context.Context) (func(), error) {
	select {
	case d.wslot <- struct{}{}:
		return func() { <-d.wslot }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting to write the state: %w", ctx.Err())
	}
}

// Write runs fn in one write transaction (BEGIN IMMEDIATE), in this
// process's write queue; fn's error rolls it back.
func (d *DB) Write(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, end, err := d.beginTx(ctx)
	if err != nil {
		return err
	}
	defer end()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// Exec runs one writing statement in this process's write queue. Parts
// that keep tables in the state (auth, audit, jobs) write through it.
func (d *DB) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	done, err := d.beginWrite(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	return d.db.ExecContext(ctx, query, args...)
}

// beginTx begins a write transaction (BEGIN IMMEDIATE) in this process's
// write queue, for code that commits itself; end rolls back whatever was not
// committed and frees the queue.
func (d *DB) beginTx(ctx context.Context) (tx *sql.Tx, end func(), err error) {
	done, err := d.beginWrite(ctx)
	if err != nil {
		return nil, nil, err
	}
	if tx, err = d.db.BeginTx(ctx, nil); err != nil {
		done()
		return nil, nil, err
	}
	return tx, func() { tx.Rollback(); done() }, nil
}
