package jobs

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A direct job is listed and logged like a queued one, is never claimed by
// the scheduler, holds back a waiting job of its store until it ends, and is
// not repeated after a restart.
func TestDirectJobs(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "jobs.db")
	q := open(t, path)
	g := &gate{release: make(chan struct{})}
	close(g.release)
	s := q.NewScheduler(g, 2)
	s.Start(ctx)

	d, err := q.Begin(ctx, &Job{Trigger: TriggerCLI, Who: "ci", Kind: KindBuildDeploy, Store: "us", Commit: "c1"})
	if err != nil || d.Status != StatusRunning || !d.Direct {
		t.Fatalf("Begin: %v %+v", err, d)
	}
	queued, _ := q.Enqueue(ctx, &Job{Trigger: TriggerWebhook, Kind: KindBuildDeploy, Store: "us", Commit: "c2"})
	q.Log(ctx, d.ID, "deploy: live: us.localhost")
	if err := q.Attach(ctx, d.ID, "us-v1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if j, _ := q.Get(ctx, queued.ID); j.Status != StatusWaiting {
		t.Fatalf("the queued job of the store ran beside the direct one: %s", j.Status)
	}
	if len(g.ran) != 0 {
		t.Fatalf("the scheduler ran %v", g.ran)
	}
	fin, err := q.End(ctx, d.ID, "", nil)
	if err != nil || fin.Status != StatusSucceeded || fin.Release != "us-v1" || fin.FinishedAt.IsZero() {
		t.Fatalf("End: %v %+v", err, fin)
	}
	wait(t, q, queued.ID, StatusSucceeded)
	if _, err := q.End(ctx, d.ID, "", nil); err == nil {
		t.Fatal("a direct job ended twice")
	}
	if _, err := q.End(ctx, queued.ID, "", nil); err == nil {
		t.Fatal("End of a queued job")
	}
	lines, _ := q.Logs(ctx, d.ID, 0, 0)
	var text []string
	for _, l := range lines {
		text = append(text, l.Text)
	}
	if got := strings.Join(text, "|"); !strings.Contains(got, "started: build-deploy of us at c1 (trigger cli by ci)") ||
		!strings.Contains(got, "live: us.localhost") || !strings.HasSuffix(got, "finished: succeeded") {
		t.Fatalf("log: %s", got)
	}
	f, _ := q.Begin(ctx, &Job{Trigger: TriggerCLI, Who: "ci", Kind: KindDeployOnly, Store: "eu", Commit: "c1"})
	if fin, _ := q.End(ctx, f.ID, "eu-v2", errors.New("deploy failed: install: exit 3")); fin.Status != StatusFailed || fin.Error != "deploy failed: install: exit 3" {
		t.Fatalf("failed direct job: %+v", fin)
	}
	s.Stop(ctx)

	// A direct job left running by a dead serve is settled, never repeated.
	cut, _ := q.Begin(ctx, &Job{Trigger: TriggerCLI, Who: "ci", Kind: KindBuildDeploy, Store: "de", Commit: "c3"})
	q.Close()
	q2 := open(t, path)
	if _, err := q2.Recover(ctx, func(store, commit, release string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if j, _ := q2.Get(ctx, cut.ID); j.Status != StatusInterrupted {
		t.Fatalf("cut-short direct job: %s", j.Status)
	}
	if w, _ := q2.List(ctx, Filter{Store: "de", Status: StatusWaiting}); len(w) != 0 {
		t.Fatalf("a direct job was queued again: %+v", w)
	}
}
