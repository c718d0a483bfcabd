// Package groupcommit queues writes so that those waiting at one moment are
// written together: one goroutine at most drains the queue, handing each
// batch to a flush function (typically one SQLite transaction). Under a
// burst this turns fifty small transactions in a row into a few.
package groupcommit

import "sync"

// Queue holds the operations not yet flushed. Flush must be set before the
// first Add; it is called from one goroutine at a time, with every operation
// queued since the previous call, and must tell each operation's waiter (if
// any) how its write went.
type Queue[T any] struct {
	Flush func(batch []T)

	mu   sync.Mutex
	ops  []T
	busy bool
}

// Add queues op; the first Add on an idle queue starts the goroutine that
// drains it.
func (q *Queue[T]) Add(op T) {
	q.mu.Lock()
	q.ops = append(q.ops, op)
	start := !q.busy
	q.busy = true
	q.mu.Unlock()
	if start {
		go q.drain()
	}
}

// drain flushes batches until none waits.
func (q *Queue[T]) drain() {
	for {
		q.mu.Lock()
		ops := q.ops
		q.ops = nil
		if len(ops) == 0 {
			q.busy = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		q.Flush(ops)
	}
}
