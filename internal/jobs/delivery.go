package jobs

import (
	"context"
	"time"
)

// ClaimDelivery records a webhook delivery id and reports whether it is new:
// a delivery seen before (even one still being answered) is not run again.
func (q *Queue) ClaimDelivery(ctx context.Context, provider, id string) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	res, err := q.db.ExecContext(ctx, `INSERT OR IGNORE INTO deliveries (provider, id, at) VALUES (?, ?, ?)`, provider, id, time.Now().UnixNano())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// ReleaseDelivery forgets a delivery whose handling failed before anything was
// queued, so that the sender's redelivery is run.
func (q *Queue) ReleaseDelivery(ctx context.Context, provider, id string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, err := q.db.ExecContext(ctx, `DELETE FROM deliveries WHERE provider = ? AND id = ?`, provider, id)
	return err
}

// PruneDeliveries forgets deliveries older than age (senders redeliver within days).
func (q *Queue) PruneDeliveries(ctx context.Context, age time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, err := q.db.ExecContext(ctx, `DELETE FROM deliveries WHERE at < ?`, time.Now().Add(-age).UnixNano())
	return err
}
