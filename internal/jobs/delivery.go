package jobs

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Delivery states. A delivery is claimed exactly once, either already decided
// (done: its jobs were queued in the same transaction) or pending (its answer
// went out before the decision was made; Accept with pending finishes it).
const (
	DeliveryDone    = "done"
	DeliveryPending = "pending"
)

// Pending is a claimed delivery whose jobs are not queued yet: the answer
// went out first, or serve stopped before the decision was made.
type Pending struct {
	Provider string
	ID       string
	// Event is what the push service needs to decide again (its own JSON).
	Event []byte
	At    time.Time
}

// Queued is what Accept did for one job.
type Queued struct {
	Job *Job
	Submitted
}

// SeenDelivery reports whether a delivery was claimed before. It only reads:
// a burst of replays costs no write.
func (q *Queue) SeenDelivery(ctx context.Context, provider, id string) (bool, error) {
	var n int
	err := q.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM deliveries WHERE provider = ? AND id = ?`, provider, id).Scan(&n)
	return n > 0, err
}

// Accept claims a delivery and queues its jobs in one transaction, so a
// delivery is never on record without its jobs nor run twice. With pending,
// it finishes a delivery ClaimPending recorded (and does nothing when that
// was finished already). fresh is false when the delivery was claimed (or
// finished) before: then nothing is queued.
func (q *Queue) Accept(ctx context.Context, provider, id string, pending bool, js []*Job) (fresh bool, out []Queued, err error) {
	err = q.inBatch(ctx, func(ctx context.Context, tx *sql.Tx) (func(), error) {
		var res sql.Result
		var err error
		if pending {
			res, err = tx.ExecContext(ctx, `UPDATE deliveries SET state = ? WHERE provider = ? AND id = ? AND state = ?`, DeliveryDone, provider, id, DeliveryPending)
		} else {
			res, err = tx.ExecContext(ctx, `INSERT OR IGNORE INTO deliveries (provider, id, at, state) VALUES (?, ?, ?, ?)`, provider, id, time.Now().UnixNano(), DeliveryDone)
		}
		if err != nil {
			return nil, fmt.Errorf("recording delivery %s: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return nil, err
		}
		fresh = true
		for _, j := range js {
			got, sub, err := q.submitTx(ctx, tx, j)
			if err != nil {
				fresh, out = false, nil
				return nil, fmt.Errorf("queueing %s: %w", j.Store, err)
			}
			out = append(out, Queued{Job: got, Submitted: sub})
		}
		return func() {
			for _, o := range out {
				q.submitted(o.Submitted)
			}
		}, nil
	})
	if err != nil {
		return false, nil, err
	}
	return fresh, out, nil
}

// ClaimPending records a delivery whose decision is still to be made, with
// the event to decide it from (after a restart too). It reports false when
// the delivery was claimed before.
func (q *Queue) ClaimPending(ctx context.Context, provider, id string, event []byte) (bool, error) {
	fresh := false
	err := q.inBatch(ctx, func(ctx context.Context, tx *sql.Tx) (func(), error) {
		res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO deliveries (provider, id, at, state, event) VALUES (?, ?, ?, ?, ?)`,
			provider, id, time.Now().UnixNano(), DeliveryPending, string(event))
		if err != nil {
			return nil, fmt.Errorf("recording delivery %s: %w", id, err)
		}
		n, err := res.RowsAffected()
		fresh = n == 1
		return nil, err
	})
	return fresh && err == nil, err
}

// PendingDeliveries returns the deliveries still to be decided, oldest first.
func (q *Queue) PendingDeliveries(ctx context.Context) ([]Pending, error) {
	rows, err := q.db.QueryContext(ctx, `SELECT provider, id, at, event FROM deliveries WHERE state = ? ORDER BY at`, DeliveryPending)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Pending
	for rows.Next() {
		var p Pending
		var at int64
		var ev string
		if err := rows.Scan(&p.Provider, &p.ID, &at, &ev); err != nil {
			return nil, err
		}
		p.At, p.Event = time.Unix(0, at), []byte(ev)
		out = append(out, p)
	}
	return out, rows.Err()
}

// ClaimDelivery records a webhook delivery id and reports whether it is new:
// a delivery seen before (even one still being answered) is not run again.
func (q *Queue) ClaimDelivery(ctx context.Context, provider, id string) (bool, error) {
	fresh, _, err := q.Accept(ctx, provider, id, false, nil)
	return fresh, err
}

// ReleaseDelivery forgets a delivery whose handling failed before anything was
// queued, so that the sender's redelivery is run.
func (q *Queue) ReleaseDelivery(ctx context.Context, provider, id string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, err := q.db.ExecContext(ctx, `DELETE FROM deliveries WHERE provider = ? AND id = ?`, provider, id)
	return err
}

// PruneDeliveries forgets deliveries older than age (senders redeliver within
// days); pending ones are kept until they are decided.
func (q *Queue) PruneDeliveries(ctx context.Context, age time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, err := q.db.ExecContext(ctx, `DELETE FROM deliveries WHERE at < ? AND state != ?`, time.Now().Add(-age).UnixNano(), DeliveryPending)
	return err
}
