package jobs

import (
	"context"
	"strings"
	"time"
)

// logTx appends a line to a job's log (x is the database or a transaction).
func (q *Queue) logTx(ctx context.Context, x execer, id, text string) error {
	seq, err := seqOf(id)
	if err != nil {
		return err
	}
	_, err = x.ExecContext(ctx, `INSERT INTO job_logs (job, seq, at, text)
		VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM job_logs WHERE job = ?), ?, ?)`, seq, seq, time.Now().UnixNano(), text)
	return err
}

// Log appends lines (text split at newlines) to a job's log and wakes its followers.
func (q *Queue) Log(ctx context.Context, id, text string) error {
	text = strings.TrimRight(text, "\n")
	q.mu.Lock()
	var err error
	for _, l := range strings.Split(text, "\n") {
		if err = q.logTx(ctx, q.db, id, l); err != nil {
			break
		}
	}
	q.mu.Unlock()
	q.notify(id)
	return err
}

// Logs returns a job's log lines after seq (0: from the start), at most limit (default 1000).
func (q *Queue) Logs(ctx context.Context, id string, after int64, limit int) ([]Line, error) {
	seq, err := seqOf(id)
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 1000
	}
	rows, err := q.db.QueryContext(ctx, `SELECT seq, at, text FROM job_logs WHERE job = ? AND seq > ? ORDER BY seq LIMIT ?`, seq, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Line{}
	for rows.Next() {
		var l Line
		var at int64
		if err := rows.Scan(&l.Seq, &at, &l.Text); err != nil {
			return nil, err
		}
		l.At = time.Unix(0, at).UTC()
		out = append(out, l)
	}
	return out, rows.Err()
}

// Subscribe returns a channel that receives (coalesced) when the job's log or
// status changes, and a function that ends the subscription.
func (q *Queue) Subscribe(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	q.subMu.Lock()
	q.subs[id] = append(q.subs[id], ch)
	q.subMu.Unlock()
	return ch, func() {
		q.subMu.Lock()
		defer q.subMu.Unlock()
		list := q.subs[id]
		for i, c := range list {
			if c == ch {
				q.subs[id] = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(q.subs[id]) == 0 {
			delete(q.subs, id)
		}
	}
}

func (q *Queue) notify(id string) {
	q.subMu.Lock()
	defer q.subMu.Unlock()
	for _, c := range q.subs[id] {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	for _, c := range q.subs["*"] {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}
