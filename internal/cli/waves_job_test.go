package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/api"
	"github.com/slipway-dev/slipway/internal/state"
)

// TestWaveDeploysAsOneJob: with deployMany set, each wave is one call with
// all its stores (one plan on the server); a wave refused as a whole falls
// back to one deploy per store, so only the refused store fails.
func TestWaveDeploysAsOneJob(t *testing.T) {
	ids := []string{"s1", "s2", "s3", "s4"}
	f := &fakeFleet{fail: map[string]error{"s4": errors.New("stores[1]: store s4 has no live release")}, live: map[string]bool{}}
	var out bytes.Buffer
	fl := f.fleet(&out)
	var calls [][]string
	fl.deployMany = func(_ context.Context, stores []string) ([]deployOutcome, error) {
		calls = append(calls, stores)
		if contains(stores, "s4") {
			return nil, errors.New("stores[1]: store s4 has no live release")
		}
		var outs []deployOutcome
		for _, s := range stores {
			outs = append(outs, deployOutcome{store: s, release: &state.Release{ID: s + "-v2", Status: state.StatusLive}})
		}
		return outs, nil
	}
	opts := fleetOptions{wave: 2, maxFailures: 5}
	res := fl.run(context.Background(), planWaves(ids, opts), reqsFor(ids...), opts)
	if len(calls) != 2 || strings.Join(calls[0], ",") != "s1,s2" || strings.Join(calls[1], ",") != "s3,s4" {
		t.Errorf("wave jobs %v, want [s1 s2] [s3 s4]", calls)
	}
	if strings.Join(f.deployed, ",") != "s3,s4" && strings.Join(f.deployed, ",") != "s4,s3" {
		t.Errorf("deployed one by one: %v, want the refused wave's stores s3 and s4 only", f.deployed)
	}
	if strings.Join(res.Deployed, ",") != "s1,s2,s3" || strings.Join(res.Failed, ",") != "s4" {
		t.Errorf("deployed %v, failed %v; want s1,s2,s3 live and s4 failed alone\n%s", res.Deployed, res.Failed, out.String())
	}
	if !strings.Contains(out.String(), "wave 2 as one job was refused") {
		t.Errorf("the fallback is not reported:\n%s", out.String())
	}
}

// TestWavesJobNarrowsImages: a wave's job carries its stores and only their images.
func TestWavesJobNarrowsImages(t *testing.T) {
	jr := api.JobRequest{Kind: api.KindBuildDeploy, Stores: []string{"a", "b", "c"},
		Images: []api.ImageRef{{Store: "a", App: "web"}, {Store: "b", App: "web"}, {Store: "c", App: "web"}, {Store: "a", App: "api"}}}
	w := wavesJob(jr, []string{"a", "c"})
	var got []string
	for _, im := range w.Images {
		got = append(got, im.Store+"/"+im.App)
	}
	if strings.Join(w.Stores, ",") != "a,c" || strings.Join(got, ",") != "a/web,c/web,a/api" {
		t.Errorf("wave job stores %v images %v", w.Stores, got)
	}
	if len(jr.Stores) != 3 || len(jr.Images) != 4 {
		t.Errorf("the fleet's job was changed: %+v", jr)
	}
}
