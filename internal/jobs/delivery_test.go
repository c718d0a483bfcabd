package jobs

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// Fifty deliveries of one push at once (ten ids, each sent five times): each
// id is claimed once, the store's job is queued once, and every claim is on
// record with it.
func TestAcceptBurstQueuesOnce(t *testing.T) {
	ctx := context.Background()
	q := open(t, filepath.Join(t.TempDir(), "jobs.db"))
	var mu sync.Mutex
	fresh := map[string]int{}
	jobIDs := map[string]bool{}
	var wg sync.WaitGroup
	for i := range 50 {
		id := fmt.Sprintf("d-%d", i%10)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, out, err := q.Accept(ctx, "github", id, false, []*Job{{Store: "eu", Commit: "c1", Kind: KindBuildDeploy, Delivery: id}})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if ok {
				fresh[id]++
				for _, o := range out {
					jobIDs[o.Job.ID] = true
				}
			} else if len(out) != 0 {
				t.Errorf("a duplicate of %s queued %+v", id, out)
			}
		}()
	}
	wg.Wait()
	if len(fresh) != 10 {
		t.Fatalf("claimed: %v", fresh)
	}
	for id, n := range fresh {
		if n != 1 {
			t.Fatalf("%s claimed %d times", id, n)
		}
	}
	list, _ := q.List(ctx, Filter{Store: "eu"})
	if len(list) != 1 || len(jobIDs) != 1 || !jobIDs[list[0].ID] {
		t.Fatalf("jobs: %+v (answers named %v)", list, jobIDs)
	}
}

// A pending delivery is finished once: a second Accept of it (a restart
// racing a late decision) queues nothing, and PendingDeliveries forgets it.
func TestPendingDeliveryFinishedOnce(t *testing.T) {
	ctx := context.Background()
	q := open(t, filepath.Join(t.TempDir(), "jobs.db"))
	if ok, err := q.ClaimPending(ctx, "github", "p-1", []byte(`{"commit":"c2"}`)); err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	if ok, _ := q.ClaimPending(ctx, "github", "p-1", nil); ok {
		t.Fatal("a pending delivery was claimed twice")
	}
	if ok, _, _ := q.Accept(ctx, "github", "p-1", false, nil); ok {
		t.Fatal("a copy of a pending delivery was accepted as new")
	}
	ps, err := q.PendingDeliveries(ctx)
	if err != nil || len(ps) != 1 || string(ps[0].Event) != `{"commit":"c2"}` {
		t.Fatalf("pending: %+v %v", ps, err)
	}
	job := func() []*Job { return []*Job{{Store: "us", Commit: "c2", Kind: KindBuildDeploy}} }
	if ok, out, err := q.Accept(ctx, "github", "p-1", true, job()); err != nil || !ok || len(out) != 1 {
		t.Fatalf("finishing: %v %+v %v", ok, out, err)
	}
	if ok, out, _ := q.Accept(ctx, "github", "p-1", true, []*Job{{Store: "us", Commit: "c3", Kind: KindBuildDeploy}}); ok || len(out) != 0 {
		t.Fatalf("finished twice: %+v", out)
	}
	if ps, _ := q.PendingDeliveries(ctx); len(ps) != 0 {
		t.Fatalf("still pending: %+v", ps)
	}
	if list, _ := q.List(ctx, Filter{Store: "us"}); len(list) != 1 || list[0].Commit != "c2" {
		t.Fatalf("jobs: %+v", list)
	}
}

// A jobs.db written before deliveries had a state opens, and its deliveries count as done.
func TestOldDeliveriesTableUpgraded(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "jobs.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE deliveries (provider TEXT NOT NULL, id TEXT NOT NULL, at INTEGER NOT NULL, answer TEXT NOT NULL DEFAULT '', PRIMARY KEY (provider, id));
		INSERT INTO deliveries (provider, id, at) VALUES ('github', 'old', 1)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	q := open(t, path)
	if seen, err := q.SeenDelivery(ctx, "github", "old"); err != nil || !seen {
		t.Fatalf("an old delivery: %v %v", seen, err)
	}
	if ps, err := q.PendingDeliveries(ctx); err != nil || len(ps) != 0 {
		t.Fatalf("pending after the upgrade: %+v %v", ps, err)
	}
}
