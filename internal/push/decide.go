package push

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/slipway-dev/slipway/internal/compose"
	"github.com/slipway-dev/slipway/internal/jobs"
	"github.com/slipway-dev/slipway/internal/state"
)

// Decisions for one store.
const (
	Queued    = "queued"
	Unchanged = "unchanged"
	Skipped   = "skipped"
)

// ReasonRequested marks a store deployed because it was asked for by name.
const ReasonRequested = "REQUESTED"

// StoreDecision is what a push or a deploy request means for one store.
type StoreDecision struct {
	Store    string   `json:"store"`
	Decision string   `json:"decision"`
	Job      string   `json:"job,omitempty"`
	Reasons  []string `json:"reasons,omitempty"`
	// Since is the live commit the store was compared with.
	Since string `json:"since,omitempty"`
	// Supersedes is the waiting job this one replaced.
	Supersedes string                `json:"supersedes,omitempty"`
	Note       string                `json:"note,omitempty"`
	Files      []compose.ChangedFile `json:"files,omitempty"`
}

// Answer is the JSON a webhook or a deploy request gets.
type Answer struct {
	Status   string          `json:"status"`
	Message  string          `json:"message,omitempty"`
	Provider string          `json:"provider,omitempty"`
	Delivery string          `json:"delivery,omitempty"`
	Commit   string          `json:"commit,omitempty"`
	Branch   string          `json:"branch,omitempty"`
	Stores   []StoreDecision `json:"stores"`
}

// Trigger says who asks for what.
type Trigger struct {
	Kind     string // jobs.Trigger*
	Who      string
	Ref      string
	Delivery string
	// Stores, when set, are deployed whether they changed or not.
	Stores []string
	// DeployOnly redeploys the live images with the current config and env.
	DeployOnly bool
}

// ErrNoSource means serve was not given a repository.
var ErrNoSource = errors.New("serve has no repository: start it with --repo URL (or source.repo in the config)")

// decide compares each store at commit with its live commit and queues a job
// for each store that changed (or that t names).
func (s *Service) decide(ctx context.Context, commit string, t Trigger) ([]StoreDecision, error) {
	p, err := s.plan(ctx, commit, t)
	if err != nil {
		return nil, err
	}
	if _, err := s.enqueue(ctx, p, "", "", false); err != nil {
		return nil, err
	}
	return p.ds, nil
}

// plan is what a push or request means for each store, before anything is
// queued: making it only reads (git objects, the live releases).
type plan struct {
	ds []StoreDecision
	// jobs[i] belongs to the decision at queued[i].
	jobs   []*jobs.Job
	queued []int
}

// plan compares each store at commit with its live commit; commit must be in the cache.
func (s *Service) plan(ctx context.Context, commit string, t Trigger) (*plan, error) {
	if s.Repo == nil {
		return nil, ErrNoSource
	}
	cfg, _, err := s.Repo.Config(ctx, commit)
	if err != nil {
		return nil, err
	}
	ids := t.Stores
	if ids == nil {
		ids = cfg.DeployableIDs()
	}
	since := map[string]string{}
	for _, id := range ids {
		if cur, err := s.d.State.Current(ctx, id); err == nil && cur != nil {
			since[id] = cur.Commit
		} else if err != nil && !errors.Is(err, state.ErrNotFound) {
			return nil, fmt.Errorf("reading the live release of %s: %w", id, err)
		}
	}
	_, changes, err := s.Repo.Changes(ctx, commit, since, ids)
	if err != nil {
		return nil, err
	}
	kind := jobs.KindBuildDeploy
	if t.DeployOnly {
		kind = jobs.KindDeployOnly
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].Store < changes[j].Store })
	p := &plan{}
	for _, ch := range changes {
		d := StoreDecision{Store: ch.Store, Since: ch.Since, Note: ch.Note, Files: ch.Files, Decision: Unchanged}
		for _, r := range ch.Reasons {
			d.Reasons = append(d.Reasons, string(r))
		}
		if ch.Changed || t.Stores != nil {
			if !ch.Changed {
				d.Reasons = []string{ReasonRequested}
			}
			d.Decision = Queued
			p.queued = append(p.queued, len(p.ds))
			p.jobs = append(p.jobs, &jobs.Job{Trigger: t.Kind, Who: t.Who, Kind: kind, Store: d.Store, Commit: commit,
				Ref: t.Ref, Reasons: d.Reasons, Delivery: t.Delivery})
		}
		p.ds = append(p.ds, d)
	}
	return p, nil
}

// enqueue queues p's jobs in one transaction, with the delivery's claim when
// delivery is set (pending: finishing a delivery claimed before its decision).
// It fills in the job ids; fresh is false when the delivery was claimed
// before (nothing queued).
func (s *Service) enqueue(ctx context.Context, p *plan, provider, delivery string, pending bool) (fresh bool, err error) {
	var out []jobs.Queued
	if delivery == "" {
		for _, j := range p.jobs {
			got, sub, err := s.Queue.Submit(ctx, j)
			if err != nil {
				return false, fmt.Errorf("queueing %s: %w", j.Store, err)
			}
			out = append(out, jobs.Queued{Job: got, Submitted: sub})
		}
	} else if fresh, out, err = s.Queue.Accept(ctx, provider, delivery, pending, p.jobs); err != nil || !fresh {
		return fresh, err
	}
	for i, q := range out {
		d := &p.ds[p.queued[i]]
		d.Job, d.Supersedes = q.Job.ID, q.Superseded
		if q.Existing {
			d.Note = "already " + q.Job.Status + " for this commit"
		}
	}
	return true, nil
}

// skipAll answers a push whose head commit asks to be skipped: every store of
// the last known config, skipped, nothing fetched or queued.
func (s *Service) skipAll(ctx context.Context, marker string) []StoreDecision {
	out := []StoreDecision{}
	head, err := s.Repo.Resolve(ctx, "refs/heads/"+s.Repo.Branch())
	if err != nil {
		return out
	}
	cfg, _, err := s.Repo.Config(ctx, head)
	if err != nil {
		return out
	}
	for _, id := range cfg.DeployableIDs() {
		out = append(out, StoreDecision{Store: id, Decision: Skipped, Reasons: []string{"SKIP_MARKER"}, Note: marker + " in the head commit's message"})
	}
	return out
}
