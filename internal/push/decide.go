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
	var out []StoreDecision
	for _, ch := range changes {
		d := StoreDecision{Store: ch.Store, Since: ch.Since, Note: ch.Note, Files: ch.Files}
		for _, r := range ch.Reasons {
			d.Reasons = append(d.Reasons, string(r))
		}
		if !ch.Changed && t.Stores == nil {
			d.Decision = Unchanged
			out = append(out, d)
			continue
		}
		if !ch.Changed {
			d.Reasons = []string{ReasonRequested}
		}
		if err := s.queue(ctx, &d, commit, kind, t); err != nil {
			return out, err
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Store < out[j].Store })
	return out, nil
}

// queue records the job for one store, unless one for the same commit already
// runs or waits (then that job is the answer).
func (s *Service) queue(ctx context.Context, d *StoreDecision, commit, kind string, t Trigger) error {
	d.Decision = Queued
	j, sub, err := s.Queue.Submit(ctx, &jobs.Job{Trigger: t.Kind, Who: t.Who, Kind: kind, Store: d.Store, Commit: commit,
		Ref: t.Ref, Reasons: d.Reasons, Delivery: t.Delivery})
	if err != nil {
		return fmt.Errorf("queueing %s: %w", d.Store, err)
	}
	d.Job, d.Supersedes = j.ID, sub.Superseded
	if sub.Existing {
		d.Note = "already " + j.Status + " for this commit"
	}
	return nil
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
