package jobs

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func open(t *testing.T, path string) *Queue {
	t.Helper()
	q, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// gate is a runner whose jobs block until released, recording what ran.
type gate struct {
	mu      sync.Mutex
	ran     []string
	release chan struct{}
	active  atomic.Int32
	peak    atomic.Int32
	stage   string
}

func (g *gate) Run(ctx context.Context, r *Run) error {
	n := g.active.Add(1)
	defer g.active.Add(-1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			break
		}
	}
	g.mu.Lock()
	g.ran = append(g.ran, r.Job.Store+"@"+r.Job.Commit)
	g.mu.Unlock()
	if err := r.Stage(StageBuild); err != nil {
		return err
	}
	if g.stage != "" {
		if err := r.Stage(g.stage); err != nil {
			return err
		}
	}
	select {
	case <-g.release:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	return r.Stage(StageDeploy)
}

func wait(t *testing.T, q *Queue, id string, statuses ...string) *Job {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		j, err := q.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range statuses {
			if j.Status == s {
				return j
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	j, _ := q.Get(context.Background(), id)
	t.Fatalf("%s is %s, want %v", id, j.Status, statuses)
	return nil
}

func TestPerStoreOneRunsOneWaitsNewerSupersedes(t *testing.T) {
	ctx := context.Background()
	q := open(t, filepath.Join(t.TempDir(), "jobs.db"))
	g := &gate{release: make(chan struct{})}
	s := q.NewScheduler(g, 4)
	s.Start(ctx)
	defer s.Stop(ctx)
	a, _ := q.Enqueue(ctx, &Job{Store: "us", Commit: "a", Kind: KindBuildDeploy, Trigger: TriggerWebhook, Who: "t"})
	wait(t, q, a.ID, StatusRunning)
	b, _ := q.Enqueue(ctx, &Job{Store: "us", Commit: "b", Kind: KindBuildDeploy, Trigger: TriggerWebhook})
	again, _ := q.Enqueue(ctx, &Job{Store: "us", Commit: "b", Kind: KindBuildDeploy, Trigger: TriggerWebhook})
	if again.ID != b.ID {
		t.Fatalf("the same commit queued twice: %s and %s", b.ID, again.ID)
	}
	c, _ := q.Enqueue(ctx, &Job{Store: "us", Commit: "c", Kind: KindBuildDeploy, Trigger: TriggerWebhook})
	if j := wait(t, q, b.ID, StatusSuperseded); j.SupersededBy != c.ID {
		t.Fatalf("b superseded by %q, want %s", j.SupersededBy, c.ID)
	}
	time.Sleep(100 * time.Millisecond)
	if j, _ := q.Get(ctx, c.ID); j.Status != StatusWaiting {
		t.Fatalf("c is %s while a runs for the same store", j.Status)
	}
	close(g.release)
	wait(t, q, a.ID, StatusSucceeded)
	wait(t, q, c.ID, StatusSucceeded)
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.ran) != 2 || g.ran[0] != "us@a" || g.ran[1] != "us@c" {
		t.Fatalf("ran %v", g.ran)
	}
	lines, _ := q.Logs(ctx, b.ID, 0, 0)
	if len(lines) == 0 {
		t.Fatal("the superseded job's log says nothing")
	}
}

func TestGlobalLimit(t *testing.T) {
	ctx := context.Background()
	q := open(t, filepath.Join(t.TempDir(), "jobs.db"))
	g := &gate{release: make(chan struct{})}
	s := q.NewScheduler(g, 2)
	s.Start(ctx)
	defer s.Stop(ctx)
	var ids []string
	for _, st := range []string{"a", "b", "c", "d"} {
		j, _ := q.Enqueue(ctx, &Job{Store: st, Commit: "x", Kind: KindBuildDeploy})
		ids = append(ids, j.ID)
	}
	time.Sleep(300 * time.Millisecond)
	if p := g.peak.Load(); p != 2 {
		t.Fatalf("%d jobs ran at once, limit 2", p)
	}
	close(g.release)
	for _, id := range ids {
		wait(t, q, id, StatusSucceeded)
	}
	if p := g.peak.Load(); p > 2 {
		t.Fatalf("%d jobs ran at once, limit 2", p)
	}
}

func TestCancel(t *testing.T) {
	ctx := context.Background()
	q := open(t, filepath.Join(t.TempDir(), "jobs.db"))
	g := &gate{release: make(chan struct{})}
	s := q.NewScheduler(g, 1)
	s.Start(ctx)
	defer s.Stop(ctx)
	a, _ := q.Enqueue(ctx, &Job{Store: "us", Commit: "a", Kind: KindBuildDeploy})
	b, _ := q.Enqueue(ctx, &Job{Store: "eu", Commit: "a", Kind: KindBuildDeploy})
	wait(t, q, a.ID, StatusRunning)
	if _, err := q.Cancel(ctx, b.ID, "me"); err != nil {
		t.Fatal(err)
	}
	wait(t, q, b.ID, StatusCancelled)
	if _, err := q.Cancel(ctx, a.ID, "me"); err != nil {
		t.Fatal(err)
	}
	wait(t, q, a.ID, StatusCancelled)
	if _, err := q.Cancel(ctx, a.ID, "me"); !errors.Is(err, ErrFinished) {
		t.Fatalf("cancelling a finished job: %v", err)
	}
	if _, err := q.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bad id: %v", err)
	}
}

// A cancel that comes once the deploy started does not stop it.
type deploying struct{ entered, release chan struct{} }

func (d *deploying) Run(ctx context.Context, r *Run) error {
	if err := r.Stage(StageDeploy); err != nil {
		return err
	}
	close(d.entered)
	<-d.release
	return context.WithoutCancel(ctx).Err()
}

func TestCancelNeverStopsADeploy(t *testing.T) {
	ctx := context.Background()
	q := open(t, filepath.Join(t.TempDir(), "jobs.db"))
	d := &deploying{entered: make(chan struct{}), release: make(chan struct{})}
	s := q.NewScheduler(d, 1)
	s.Start(ctx)
	defer s.Stop(ctx)
	a, _ := q.Enqueue(ctx, &Job{Store: "us", Commit: "a", Kind: KindBuildDeploy})
	<-d.entered
	if _, err := q.Cancel(ctx, a.ID, "me"); err != nil {
		t.Fatal(err)
	}
	close(d.release)
	if j := wait(t, q, a.ID, StatusSucceeded, StatusCancelled, StatusFailed); j.Status != StatusSucceeded {
		t.Fatalf("a deploy under way ended %s", j.Status)
	}
}

func TestRestartRunsWaitingAndRequeuesInterruptedOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "jobs.db")
	q := open(t, path)
	g := &gate{release: make(chan struct{})}
	s := q.NewScheduler(g, 1)
	s.Start(ctx)
	a, _ := q.Enqueue(ctx, &Job{Store: "us", Commit: "a", Kind: KindBuildDeploy})
	b, _ := q.Enqueue(ctx, &Job{Store: "eu", Commit: "a", Kind: KindBuildDeploy})
	wait(t, q, a.ID, StatusRunning)
	// Simulate a crash: the record still says running; nothing finishes it.
	s.cancel(errors.New("crash"))
	<-s.done
	s.wg.Wait()
	ja, _ := q.Get(ctx, a.ID)
	ja.Status = StatusRunning
	ja.Stage = StageBuild
	save(ctx, q.db, ja)
	q.Close()

	q2 := open(t, path)
	rec, err := q2.Recover(ctx, func(store, commit, release string) bool { return false })
	if err != nil || len(rec) != 1 {
		t.Fatalf("Recover = %v, %v", rec, err)
	}
	if j, _ := q2.Get(ctx, a.ID); j.Status != StatusInterrupted {
		t.Fatalf("a is %s after the restart", j.Status)
	}
	list, _ := q2.List(ctx, Filter{Store: "us", Status: StatusWaiting})
	if len(list) != 1 || list[0].RequeuedFrom != a.ID {
		t.Fatalf("requeued: %+v", list)
	}
	again := list[0]
	g2 := &gate{release: make(chan struct{})}
	close(g2.release)
	s2 := q2.NewScheduler(g2, 1)
	s2.Start(ctx)
	defer s2.Stop(ctx)
	wait(t, q2, b.ID, StatusSucceeded)
	wait(t, q2, again.ID, StatusSucceeded)

	// A repeat that is interrupted again is not repeated a second time.
	again.Status, again.Stage = StatusRunning, StageBuild
	save(ctx, q2.db, again)
	q2.Recover(ctx, nil)
	if list, _ := q2.List(ctx, Filter{Store: "us", Status: StatusWaiting}); len(list) != 0 {
		t.Fatalf("a repeat was repeated: %+v", list)
	}
}

func TestDeliveryClaimedOnce(t *testing.T) {
	ctx := context.Background()
	q := open(t, filepath.Join(t.TempDir(), "jobs.db"))
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, err := q.ClaimDelivery(ctx, "github", "d-1"); err == nil && ok {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("a delivery was claimed %d times", wins.Load())
	}
	if ok, _ := q.ClaimDelivery(ctx, "gitlab", "d-1"); !ok {
		t.Fatal("another provider's delivery with the same id was refused")
	}
}
