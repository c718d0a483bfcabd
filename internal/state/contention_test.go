package state

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// deployWrites is the state traffic of one store's deploy: lock, release
// record, stage updates, promote, final update, unlock.
func deployWrites(ctx context.Context, d *DB, store string) error {
	l, err := d.Acquire(ctx, store, LockOptions{})
	if err != nil {
		return err
	}
	defer l.Release()
	r := &Release{Project: "p", Store: store, Kind: KindDeployOnly, Status: StatusDeploying, Images: map[string]Image{"web": {Ref: "r", Digest: "sha256:x"}}}
	if err := d.CreateRelease(ctx, r); err != nil {
		return err
	}
	if _, err := d.Current(ctx, store); err != nil && err != ErrNotFound {
		return err
	}
	for i := range 3 {
		r.Stages = append(r.Stages, Stage{Name: fmt.Sprint("s", i), Status: "ok"})
		if err := d.SaveProgress(ctx, r); err != nil {
			return err
		}
	}
	if err := d.Promote(ctx, r); err != nil {
		return err
	}
	return d.Finish(ctx, r)
}

// TestConcurrentDeployWrites runs 30 stores' deploy writes at once: none
// fails with "database is locked", and the time is logged (go test -v) to
// compare the in-process write queue with SQLite's busy handler.
func TestConcurrentDeployWrites(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for round := range 3 {
		t0 := time.Now()
		var wg sync.WaitGroup
		errs := make([]error, 30)
		for i := range 30 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = deployWrites(ctx, d, fmt.Sprintf("s%02d", i))
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("store s%02d: %v", i, err)
			}
		}
		t.Logf("round %d: 30 stores' deploy writes in %s", round+1, time.Since(t0))
	}
}

// A waiter for a lock held in this process takes it as soon as the holder
// lets go, not at its next poll.
func TestLockWaiterWakesAtRelease(t *testing.T) {
	ctx := context.Background()
	d := open(t)
	l, err := d.Acquire(ctx, "us", LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan time.Time, 1)
	go func() {
		l2, err := d.Acquire(ctx, "us", LockOptions{Wait: true})
		if err != nil {
			t.Error(err)
			got <- time.Time{}
			return
		}
		got <- time.Now()
		l2.Release()
	}()
	time.Sleep(2 * crossProcessPoll / 5) // the waiter has tried and is waiting
	released := time.Now()
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	at := <-got
	if at.IsZero() {
		return
	}
	if wait := at.Sub(released); wait > crossProcessPoll/2 {
		t.Fatalf("the waiter took the lock %s after its release: it polled instead of waking", wait)
	}
}
