package cli

import (
	"context"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/api"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/server"
)

// deployWaveJob deploys a wave's stores as one job: serve loads its config,
// reads the stores' env and resolves their images once for the wave, and
// runs the stores side by side (each failing alone). The error is for a job
// serve refused as a whole (one store's plan refused: no live release, a
// missing secret) or could not start.
func deployWaveJob(ctx context.Context, c *server.Client, jr api.JobRequest, stores []string, onEvent func(pipeline.Event)) ([]deployOutcome, error) {
	t0 := time.Now()
	var mu sync.Mutex
	last := map[string]time.Time{}
	res, err := c.DeployStores(ctx, wavesJob(jr, stores), func(e pipeline.Event) {
		mu.Lock()
		last[e.Store] = time.Now()
		mu.Unlock()
		onEvent(e)
	})
	if err != nil && len(res) == 0 {
		return nil, err
	}
	byStore := map[string]server.StoreResult{}
	for _, r := range res {
		byStore[r.Store] = r
	}
	outs := make([]deployOutcome, len(stores))
	for i, s := range stores {
		r, ok := byStore[s]
		o := deployOutcome{store: s, release: r.Release, err: r.Err, took: time.Since(t0)}
		if at, seen := last[s]; seen {
			o.took = at.Sub(t0)
		}
		if !ok {
			o.err = err
			if o.err == nil {
				o.err = server.ErrStreamBroken
			}
		}
		outs[i] = o
	}
	return outs, nil
}

// wavesJob narrows a job to a wave's stores and their images.
func wavesJob(jr api.JobRequest, stores []string) api.JobRequest {
	w := jr
	w.Stores = stores
	w.Images = nil
	for _, im := range jr.Images {
		for _, s := range stores {
			if im.Store == s {
				w.Images = append(w.Images, im)
			}
		}
	}
	return w
}
