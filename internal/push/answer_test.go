package push_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/jobs"
	"github.com/slipway-dev/slipway/internal/push"
	"github.com/slipway-dev/slipway/internal/source"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// rawGitHub sends a signed push delivery from any goroutine.
func (h *harness) rawGitHub(delivery, commit string) (int, push.Answer, error) {
	body, _ := json.Marshal(pushPayload("main", commit, "burst"))
	req, _ := http.NewRequest("POST", h.api+"/hooks/github", bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-Hub-Signature-256", "sha256="+source.Sign(h.secret, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, push.Answer{}, err
	}
	defer resp.Body.Close()
	var a push.Answer
	err = json.NewDecoder(resp.Body).Decode(&a)
	return resp.StatusCode, a, err
}

// waitDecided waits until no delivery is pending and returns the jobs per store.
func (h *harness) waitDecided(q *jobs.Queue) map[string][]*jobs.Job {
	h.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	for {
		ps, err := q.PendingDeliveries(ctx)
		if err != nil {
			h.t.Fatal(err)
		}
		if len(ps) == 0 {
			break
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("deliveries still pending: %+v", ps)
		}
		time.Sleep(20 * time.Millisecond)
	}
	list, err := q.List(ctx, jobs.Filter{Limit: 1000})
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string][]*jobs.Job{}
	for _, j := range list {
		out[j.Store] = append(out[j.Store], j)
	}
	return out
}

// With no time to decide, every delivery is answered at once ("deciding")
// and decided after: a burst of copies and of distinct deliveries of one
// push queues one job per store, none twice, and a delivery answered but not
// decided when serve stops is decided by the next serve.
func TestWebhookAnswersBeforeSlowDecisions(t *testing.T) {
	h := start(t, time.Nanosecond)
	head := testenv.Git(t, h.repo.Clone, "rev-parse", "HEAD")

	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[string]int{}
	var errs []error
	for i := 0; i < 30; i++ {
		id := fmt.Sprintf("burst-%d", i%10) // ten deliveries, each sent three times at once
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			code, a, err := h.rawGitHub(id, head)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || code >= 300 {
				errs = append(errs, fmt.Errorf("%s: %d %v %+v", id, code, err, a))
				return
			}
			if took := time.Since(start); took > 5*time.Second {
				errs = append(errs, fmt.Errorf("%s answered after %s", id, took))
			}
			statuses[a.Status]++
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if statuses[push.Deciding]+statuses["accepted"] != 10 || statuses["duplicate"] != 20 {
		t.Fatalf("answers of ten deliveries sent three times each: %v", statuses)
	}
	t.Logf("answers: %v", statuses)
	byStore := h.waitDecided(h.svc.Queue)
	if len(byStore) != 3 || len(byStore["us"]) != 1 || len(byStore["eu"]) != 1 || len(byStore["sports-brand"]) != 1 {
		t.Fatalf("jobs after the burst: %v", byStore)
	}
	// The jobs name the delivery that queued them, and GET /v1/jobs finds them by it.
	d := byStore["us"][0].Delivery
	resp, err := h.local.Get("http://slipway/v1/jobs?delivery=" + d)
	if err != nil {
		t.Fatal(err)
	}
	var list []jobs.Job
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list) != 3 {
		t.Fatalf("jobs of delivery %s: %+v", d, list)
	}
	// A replay after the decision is still a duplicate.
	if code, a, err := h.rawGitHub("burst-3", head); err != nil || a.Status != "duplicate" {
		t.Fatalf("replay: %d %v %+v", code, err, a)
	}

	// Serve stops with a delivery answered but not decided: the next serve decides it.
	c2 := h.repo.Commit("main", "eu footer", map[string]string{"apps/stores/fashion-brand/stores/eu/storefront-unified-nextjs/components/footer.js": "module.exports = { text: 'EU footer v3' };\n"})
	sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h.svc.Stop(sctx)
	q, err := jobs.Open(sctx, filepath.Join(h.opts.DataDir, "jobs.db"))
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := json.Marshal(map[string]string{"commit": c2, "branch": "main", "who": "github:octo"})
	if fresh, err := q.ClaimPending(sctx, source.GitHub, "answered-then-stopped", ev); err != nil || !fresh {
		t.Fatalf("claiming a pending delivery: %v %v", fresh, err)
	}
	q.Close()
	svc, err := push.Open(h.ctx, h.opts, h.deps)
	if err != nil {
		t.Fatal(err)
	}
	h.svc = svc
	svc.Start(h.ctx)
	h.waitDecided(svc.Queue)
	got, err := svc.Queue.List(sctx, jobs.Filter{Delivery: "answered-then-stopped"})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing is live yet, so every store counts as changed at c2.
	if len(got) != 3 || got[0].Commit != c2 || got[0].Who != "github:octo" {
		t.Fatalf("jobs of the delivery decided after the restart: %+v", got)
	}
}
