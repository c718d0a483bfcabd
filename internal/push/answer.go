package push

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/jobs"
	"github.com/slipway-dev/slipway/internal/source"
)

// DecideBudget is how long after a webhook arrives its answer may wait for
// its decisions (the fetch of the commit and the comparison of every store),
// counted from the start of the request, so that the answer, its write and
// the HTTP around it stay within the 200 ms goal. Past it, the answer is
// "deciding" and the decisions finish in the background: a safety valve for
// a slow remote (a fetch over the internet can take longer than the whole
// goal), recorded in the log and in the answer's Server-Timing. A commit
// already fetched (every delivery of a burst but the first waits on the same
// fetch, a redelivery) decides in a few milliseconds.
const DecideBudget = 150 * time.Millisecond

// Deciding is the answer's status when the decisions come after it (as jobs of the delivery).
const Deciding = "deciding"

// pendingEvent is what a delivery answered before its decision keeps on
// record, to be decided after a restart too.
type pendingEvent struct {
	Commit string `json:"commit"`
	Branch string `json:"branch"`
	Who    string `json:"who"`
}

type decided struct {
	p   *plan
	err error
}

// deployPush fetches the pushed commit, decides per store and queues the
// changed ones with the delivery's claim in one transaction, if that takes
// less than the budget; otherwise it claims the delivery as pending and
// answers at once, and the decision is queued when it is made.
func (s *Service) deployPush(ctx context.Context, ev *source.Event, ans Answer, tm *timing) (Answer, int, error) {
	pe := pendingEvent{Commit: ev.After, Branch: ev.Branch, Who: ev.Provider}
	if ev.Pusher != "" {
		pe.Who += ":" + ev.Pusher
	}
	ch := make(chan decided, 1)
	go func() { ch <- s.planPush(context.WithoutCancel(ctx), ev.Delivery, pe) }()
	budget := time.NewTimer(max(0, s.budget-time.Since(tm.start)))
	defer budget.Stop()
	select {
	case d := <-ch:
		tm.mark("decide")
		if d.err != nil {
			return ans, 0, d.err
		}
		fresh, err := s.enqueue(ctx, d.p, ev.Provider, ev.Delivery, false)
		tm.mark("queue")
		if err != nil {
			return ans, 0, err
		}
		if !fresh {
			return duplicate(ev.Provider, ev.Delivery), http.StatusOK, nil
		}
		return accepted(ans, d.p.ds), http.StatusAccepted, nil
	case <-budget.C:
	}
	tm.mark("decide")
	s.log.Warn("webhook answered before its decisions: the fetch and comparison took longer than the budget",
		"provider", ev.Provider, "delivery", ev.Delivery, "commit", short(ev.After), "budget", s.budget, "waited", time.Since(tm.start).Round(time.Millisecond))
	tm.deciding = true
	doc, _ := json.Marshal(pe)
	fresh, err := s.Queue.ClaimPending(ctx, ev.Provider, ev.Delivery, doc)
	tm.mark("claim")
	if err != nil {
		return ans, 0, err
	}
	if !fresh {
		return duplicate(ev.Provider, ev.Delivery), http.StatusOK, nil
	}
	go s.finishPending(ch, ev.Provider, ev.Delivery)
	ans.Status = Deciding
	ans.Message = fmt.Sprintf("commit %s is being fetched and compared; each changed store's job carries delivery %s (GET /v1/jobs?delivery=%s)",
		short(ev.After), ev.Delivery, ev.Delivery)
	return ans, http.StatusAccepted, nil
}

func accepted(ans Answer, ds []StoreDecision) Answer {
	ans.Stores, ans.Status = ds, "accepted"
	n := 0
	for _, d := range ds {
		if d.Decision == Queued {
			n++
		}
	}
	ans.Message = fmt.Sprintf("%d store(s) queued, %d unchanged", n, len(ds)-n)
	return ans
}

// planPush brings the commit into the cache (from the configured repository
// only: the payload names the commit, never where to fetch it) and plans.
func (s *Service) planPush(ctx context.Context, delivery string, pe pendingEvent) decided {
	ctx, cancel := context.WithTimeout(ctx, AnswerBudget)
	defer cancel()
	if err := s.Repo.FetchCommit(ctx, pe.Commit); err != nil {
		return decided{err: err}
	}
	p, err := s.plan(ctx, pe.Commit, Trigger{Kind: jobs.TriggerWebhook, Who: pe.Who, Ref: pe.Branch, Delivery: delivery})
	return decided{p: p, err: err}
}

// finishPending queues a pending delivery's jobs once its decision is made. A
// decision that failed forgets the claim, so a redelivery runs.
func (s *Service) finishPending(ch <-chan decided, provider, delivery string) {
	d := <-ch
	ctx := context.Background()
	if d.err == nil {
		_, d.err = s.enqueue(ctx, d.p, provider, delivery, true)
	}
	if d.err != nil {
		s.log.Error("webhook decision failed after its answer; redeliver it", "provider", provider, "delivery", delivery, "error", d.err)
		s.Queue.ReleaseDelivery(ctx, provider, delivery)
		return
	}
	s.log.Info("webhook decided after its answer", "provider", provider, "delivery", delivery, "stores", len(d.p.ds), "queued", len(d.p.jobs))
}

// resumePending decides the deliveries a stopped serve had answered but not
// decided yet (their jobs are not lost with the restart).
func (s *Service) resumePending(ctx context.Context) {
	ps, err := s.Queue.PendingDeliveries(ctx)
	if err != nil {
		s.log.Error("reading pending webhook deliveries", "error", err)
		return
	}
	for _, p := range ps {
		var pe pendingEvent
		if err := json.Unmarshal(p.Event, &pe); err != nil || !source.IsSHA(pe.Commit) {
			s.log.Error("a pending webhook delivery cannot be read; forgetting it", "provider", p.Provider, "delivery", p.ID, "error", err)
			s.Queue.ReleaseDelivery(ctx, p.Provider, p.ID)
			continue
		}
		ch := make(chan decided, 1)
		ch <- s.planPush(ctx, p.ID, pe)
		s.finishPending(ch, p.Provider, p.ID)
	}
}

// timing collects where a webhook's answer spent its time, for its
// Server-Timing header (the benchmark reads it).
type timing struct {
	start, last time.Time
	parts       []string
	// deciding: the answer went out before its decisions (the budget ran out).
	deciding bool
}

func newTiming() *timing {
	now := time.Now()
	return &timing{start: now, last: now}
}

func (t *timing) mark(name string) {
	now := time.Now()
	t.parts = append(t.parts, fmt.Sprintf("%s;dur=%.1f", name, float64(now.Sub(t.last).Microseconds())/1000))
	t.last = now
}

func (t *timing) String() string {
	parts := t.parts
	if t.deciding {
		parts = append(parts[:len(parts):len(parts)], `budget;desc="decisions after the answer"`)
	}
	return strings.Join(parts, ", ")
}
