package compose

import (
	"context"
	"fmt"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/gitfs"
)

// ChangedTrees compares every deployable store of now's config between two
// commits, reading only git objects (no working tree, nothing written), with
// the same inheritance-aware reasons as Changed. old may be nil: every store is
// new. cfgNow is the config loaded from now (config.LoadFS); ref names old in messages.
func ChangedTrees(ctx context.Context, cfgNow *config.Config, old, now *gitfs.Tree, ref string, storeIDs []string) ([]Change, error) {
	if storeIDs == nil {
		storeIDs = cfgNow.DeployableIDs()
	}
	var cfgOld *config.Config
	var oldSrc Source
	if old != nil {
		var err error
		if cfgOld, err = configAt(old, cfgNow, ref); err != nil {
			return nil, err
		}
		oldSrc = &listCache{Source: gitSource{old}, m: map[string]*listing{}}
	}
	nowSrc := &listCache{Source: gitSource{now}, m: map[string]*listing{}}
	var out []Change
	for _, id := range storeIDs {
		after, err := Plan(cfgNow, nowSrc, id)
		if err != nil {
			return nil, fmt.Errorf("planning %s at %s: %w", id, now.Commit, err)
		}
		ch := Change{Store: id}
		if cfgOld == nil || cfgOld.Store(id) == nil || !cfgOld.Store(id).Deployable() {
			ch.New, ch.Reasons = true, []Reason{StoreChanged}
			out = append(out, ch)
			continue
		}
		before, err := Plan(cfgOld, oldSrc, id)
		if err != nil {
			return nil, fmt.Errorf("planning %s at %s: %w", id, ref, err)
		}
		changed, err := compareStore(&ch, cfgOld, cfgNow, nowSrc, oldSrc, before, after)
		if err != nil {
			return nil, err
		}
		if changed {
			out = append(out, ch)
		}
	}
	return out, nil
}
