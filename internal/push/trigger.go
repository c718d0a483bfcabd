package push

import (
	"context"
	"errors"
	"fmt"

	"github.com/slipway-dev/slipway/internal/jobs"
	"github.com/slipway-dev/slipway/internal/state"
)

// Submit queues one job for store from a button or a script: kind
// build-deploy deploys the configured branch's head, deploy-only the live
// images with the current config, rollback the images of release target.
func (s *Service) Submit(ctx context.Context, store, kind, target, trigger, who string) (*jobs.Job, error) {
	if s.Repo == nil {
		return nil, ErrNoSource
	}
	commit := ""
	switch kind {
	case jobs.KindBuildDeploy:
		head, err := s.Repo.Fetch(ctx)
		if err != nil {
			return nil, err
		}
		commit = head
	case jobs.KindDeployOnly:
		live, err := s.d.State.Current(ctx, store)
		if err != nil || live == nil {
			return nil, fmt.Errorf("store %s has no live release to redeploy", store)
		}
		commit = live.Commit
	case jobs.KindRollback:
		rel, err := s.d.State.Release(ctx, target)
		if errors.Is(err, state.ErrNotFound) || (err == nil && rel.Store != store) {
			return nil, fmt.Errorf("store %s has no release %q", store, target)
		}
		if err != nil {
			return nil, err
		}
		if rel.Status != state.StatusLive && rel.Status != state.StatusSuperseded {
			return nil, fmt.Errorf("release %s never served traffic (%s): roll back to one that did", rel.ID, rel.Status)
		}
		commit = rel.Commit
	default:
		return nil, fmt.Errorf("unknown job kind %q", kind)
	}
	reasons := []string{ReasonRequested}
	j, _, err := s.Queue.Submit(ctx, &jobs.Job{Trigger: trigger, Who: who, Kind: kind, Store: store, Commit: commit, Target: target, Reasons: reasons, Ref: s.Repo.Branch()})
	return j, err
}
