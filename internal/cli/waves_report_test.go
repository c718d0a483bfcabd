package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/api"
)

// The rollout the console shows follows the run: every wave's stores are
// reported deploying before their wave runs, then live or failed; a stop
// leaves the later waves not deployed and the rolled-back store marked.
func TestRolloutReportedEachStep(t *testing.T) {
	ids := []string{"c", "s1", "s2", "s3", "s4", "s5", "s6"}
	boom := errors.New("deploy failed: deploy: instance not healthy")
	f := &fakeFleet{fail: map[string]error{"s2": boom, "s4": boom, "s3": nil}, live: map[string]bool{}}
	var out bytes.Buffer
	fl := f.fleet(&out)
	var reports []api.Rollout
	fl.report = func(_ context.Context, r api.Rollout) error {
		if err := r.Validate(); err != nil {
			t.Errorf("an invalid report: %v", err)
		}
		// A copy: the reporter keeps changing its own.
		b := r
		b.Waves = nil
		for _, w := range r.Waves {
			w.Stores = append([]api.RolloutStore(nil), w.Stores...)
			b.Waves = append(b.Waves, w)
		}
		reports = append(reports, b)
		return nil
	}
	opts := fleetOptions{canary: "c", wave: 2, maxFailures: 2, rollbackWave: true}
	fl.run(context.Background(), planWaves(ids, opts), reqsFor(ids...), opts)

	status := func(r api.Rollout) string {
		var b []string
		for _, w := range r.Waves {
			for _, s := range w.Stores {
				b = append(b, s.Store+"="+s.Status)
			}
		}
		return strings.Join(b, " ")
	}
	var got []string
	for _, r := range reports {
		got = append(got, r.Status+": "+status(r))
	}
	want := []string{
		"running: c=deploying s1=waiting s2=waiting s3=waiting s4=waiting s5=waiting s6=waiting",
		"running: c=live s1=waiting s2=waiting s3=waiting s4=waiting s5=waiting s6=waiting",
		"running: c=live s1=deploying s2=deploying s3=waiting s4=waiting s5=waiting s6=waiting",
		"running: c=live s1=live s2=failed s3=waiting s4=waiting s5=waiting s6=waiting",
		"running: c=live s1=live s2=failed s3=deploying s4=deploying s5=waiting s6=waiting",
		"running: c=live s1=live s2=failed s3=live s4=failed s5=waiting s6=waiting",
		"stopped: c=live s1=live s2=failed s3=rolled-back s4=failed s5=not-deployed s6=not-deployed",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("reports:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	last := reports[len(reports)-1]
	if last.Waves[0].Name != "canary" || !last.Waves[0].Canary || last.Note != "stopped after wave 2" || !strings.Contains(last.Waves[1].Stores[1].Error, "instance not healthy") {
		t.Fatalf("the last report: %+v", last)
	}
}
