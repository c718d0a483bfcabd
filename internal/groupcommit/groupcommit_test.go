package groupcommit

import (
	"sync"
	"testing"
)

// Every operation is flushed exactly once, in order, and a burst shares
// batches (fewer flushes than operations) while one flush runs at a time.
func TestQueueFlushesEveryOpOnceInBatches(t *testing.T) {
	var (
		mu      sync.Mutex
		seen    []int
		flushes int
		running int
		wg      sync.WaitGroup
	)
	release := make(chan struct{})
	q := &Queue[int]{}
	q.Flush = func(batch []int) {
		mu.Lock()
		running++
		if running > 1 {
			t.Errorf("two flushes at once")
		}
		first := flushes == 0
		flushes++
		mu.Unlock()
		if first {
			<-release // hold the first batch so the rest pile up
		}
		mu.Lock()
		seen = append(seen, batch...)
		running--
		mu.Unlock()
		wg.Add(-len(batch))
	}
	const n = 200
	wg.Add(n)
	q.Add(0)
	for i := 1; i < n; i++ {
		q.Add(i)
	}
	close(release)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != n {
		t.Fatalf("flushed %d ops, want %d", len(seen), n)
	}
	for i, v := range seen {
		if v != i {
			t.Fatalf("op %d flushed as %d: order lost", i, v)
		}
	}
	if flushes >= n {
		t.Errorf("%d flushes for %d ops: nothing was batched", flushes, n)
	}
}
