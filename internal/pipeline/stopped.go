package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/state"
)

// A stopped store's instances are gone, and with them the sealed specs that
// bring a store back after a serve restart. So Stop records the live
// request itself (sealed, in state): after a restart the store stays
// stopped (the router keeps its maintenance page) and Start still knows the
// env to start it with.

// stoppedRecord is what Stop records.
type stoppedRecord struct {
	Request DeployRequest `json:"request"`
	Release string        `json:"release"`
}

// recordStopped keeps ls for a Start after a serve restart. A state without
// a master key (some tests) keeps nothing: Start then needs a deploy-only
// after a restart, as before.
func (d *Deployer) recordStopped(ctx context.Context, ls *liveStore) error {
	req := ls.req
	req.Hooks, req.Site = Hooks{}, proxy.Site{}
	b, err := json.Marshal(stoppedRecord{Request: req, Release: ls.release})
	if err != nil {
		return fmt.Errorf("recording that %s is stopped: %w", req.Store, err)
	}
	if err := d.State.SetStopped(ctx, req.Store, b); err != nil && !errors.Is(err, state.ErrNoKey) {
		return err
	}
	return nil
}

// restoreStopped is the live store of a store stopped before serve restarted.
func (d *Deployer) restoreStopped(store string) *liveStore {
	b, err := d.State.Stopped(context.Background(), store)
	if err != nil {
		if !errors.Is(err, state.ErrNotFound) && d.Log != nil {
			d.Log.Warn("reading a stopped store's request", "store", store, "error", err)
		}
		return nil
	}
	var r stoppedRecord
	if err := json.Unmarshal(b, &r); err != nil || r.Request.Store != store {
		return nil
	}
	return &liveStore{req: r.Request, release: r.Release, stopped: true}
}

// clearStopped forgets a stop once the store runs again (start, deploy, remove).
func (d *Deployer) clearStopped(store string) {
	if err := d.State.ClearStopped(context.Background(), store); err != nil && d.Log != nil {
		d.Log.Warn("recording that a store runs again", "store", store, "error", err)
	}
}
