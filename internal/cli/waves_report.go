package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/slipway-dev/slipway/internal/api"
	"github.com/slipway-dev/slipway/internal/state"
)

// rolloutReport keeps a rollout's view and sends it to serve after each
// step (best effort: a serve that cannot take it does not stop the rollout).
type rolloutReport struct {
	r      api.Rollout
	send   func(ctx context.Context, r api.Rollout) error
	log    io.Writer
	warned bool
}

func newRolloutReport(waves []wave, send func(context.Context, api.Rollout) error, log io.Writer) *rolloutReport {
	rp := &rolloutReport{send: send, log: log,
		r: api.Rollout{ID: "r-" + time.Now().UTC().Format("20060102-150405.000"), Status: api.RolloutRunning, StartedAt: time.Now().UTC()}}
	for _, wv := range waves {
		w := api.RolloutWave{Name: wv.Name, Canary: wv.Canary}
		for _, s := range wv.Stores {
			w.Stores = append(w.Stores, api.RolloutStore{Store: s, Status: api.RolloutWaiting})
		}
		rp.r.Waves = append(rp.r.Waves, w)
	}
	return rp
}

// set changes the status of every store of wave i (all: "" store) or one store.
func (rp *rolloutReport) set(i int, store, status string, rel *state.Release, err error) {
	if rp == nil {
		return
	}
	for j := range rp.r.Waves[i].Stores {
		s := &rp.r.Waves[i].Stores[j]
		if store != "" && s.Store != store {
			continue
		}
		s.Status = status
		if rel != nil {
			s.Release = rel.ID
		}
		if err != nil {
			s.Error = firstLine(err.Error())
		}
	}
}

func (rp *rolloutReport) flush(ctx context.Context) {
	if rp == nil || rp.send == nil {
		return
	}
	if err := rp.send(ctx, rp.r); err != nil && !rp.warned {
		rp.warned = true
		fmt.Fprintf(rp.log, "the console will not show this rollout: %v\n", firstLine(err.Error()))
	}
}

func (rp *rolloutReport) startWave(ctx context.Context, i int) {
	if rp != nil {
		rp.set(i, "", api.RolloutDeploying, nil, nil)
		rp.flush(ctx)
	}
}

func (rp *rolloutReport) endWave(ctx context.Context, i int, outs []deployOutcome) {
	if rp == nil {
		return
	}
	for _, o := range outs {
		status := api.RolloutLive
		if o.err != nil {
			status = api.RolloutFailed
		}
		rp.set(i, o.store, status, o.release, o.err)
	}
	rp.flush(ctx)
}

// end records how the rollout ended: later waves not deployed, stores rolled back.
func (rp *rolloutReport) end(ctx context.Context, res fleetResult) {
	if rp == nil {
		return
	}
	rp.r.Status = api.RolloutDone
	if res.StoppedAt != "" {
		rp.r.Status = api.RolloutStopped
		rp.r.Note = "stopped after " + res.StoppedAt
	}
	for i := range rp.r.Waves {
		for _, s := range res.NotDeployed {
			rp.set(i, s, api.RolloutNotDeployed, nil, nil)
		}
		for _, s := range res.RolledBack {
			rp.set(i, s, api.RolloutRolledBack, nil, nil)
		}
	}
	rp.flush(context.WithoutCancel(ctx))
}
