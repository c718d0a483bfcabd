package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/server"
	"github.com/slipway-dev/slipway/internal/state"
)

func TestPlanWaves(t *testing.T) {
	ids := []string{"s5", "s1", "c", "s2", "s4", "s3"}
	got := planWaves(ids, fleetOptions{canary: "c", wave: 2})
	var parts []string
	for _, w := range got {
		parts = append(parts, w.Name+"="+strings.Join(w.Stores, ","))
	}
	if s := strings.Join(parts, " "); s != "canary=c wave 1=s1,s2 wave 2=s3,s4 wave 3=s5" {
		t.Errorf("plan = %s", s)
	}
	if got := planWaves(ids, fleetOptions{}); len(got) != 1 || len(got[0].Stores) != 6 {
		t.Errorf("no --wave: %+v, want one wave of all", got)
	}
	if err := (&fleetOptions{canary: "nope"}).check(ids); err == nil || !strings.Contains(err.Error(), "--canary nope") {
		t.Errorf("unknown canary: %v", err)
	}
}

// fakeFleet deploys stores through a fake that fails the ones in fail.
type fakeFleet struct {
	mu       sync.Mutex
	deployed []string
	rolled   []string
	fail     map[string]error
	// live: a failure after the swap (verify), leaving the new release live.
	live map[string]bool
}

func (f *fakeFleet) fleet(out *bytes.Buffer) *fleet {
	return &fleet{out: out, log: out, target: func(string) string { return "default (process)" },
		deploy: func(_ context.Context, req pipeline.DeployRequest) (*state.Release, error) {
			f.mu.Lock()
			f.deployed = append(f.deployed, req.Store)
			f.mu.Unlock()
			rel := &state.Release{ID: req.Store + "-v2", Status: state.StatusLive}
			if err := f.fail[req.Store]; err != nil {
				if f.live[req.Store] {
					rel.Stage, rel.Error = "verify", err.Error()
					return rel, err
				}
				rel.Status = state.StatusFailed
				return rel, err
			}
			return rel, nil
		},
		rollback: func(_ context.Context, store string) (*state.Release, error) {
			f.mu.Lock()
			f.rolled = append(f.rolled, store)
			f.mu.Unlock()
			return &state.Release{ID: store + "-v3", Status: state.StatusLive}, nil
		},
	}
}

func reqsFor(ids ...string) map[string]pipeline.DeployRequest {
	m := map[string]pipeline.DeployRequest{}
	for _, id := range ids {
		m[id] = pipeline.DeployRequest{Store: id}
	}
	return m
}

// TestWaveStopsAtMaxFailures: with --max-failures 2, the wave in which the
// second store fails is the last; later waves are not deployed, and with
// --rollback-wave that wave's stores that went live are rolled back.
func TestWaveStopsAtMaxFailures(t *testing.T) {
	ids := []string{"c", "s1", "s2", "s3", "s4", "s5", "s6"}
	boom := errors.New("deploy failed: deploy: instance not healthy")
	f := &fakeFleet{fail: map[string]error{"s2": boom, "s4": boom, "s3": nil}, live: map[string]bool{}}
	var out bytes.Buffer
	opts := fleetOptions{canary: "c", wave: 2, maxFailures: 2, rollbackWave: true}
	res := f.fleet(&out).run(context.Background(), planWaves(ids, opts), reqsFor(ids...), opts)

	if res.StoppedAt != "wave 2" {
		t.Errorf("stopped at %q, want wave 2 (s4 is the second failure)\n%s", res.StoppedAt, out.String())
	}
	if strings.Join(res.NotDeployed, ",") != "s5,s6" {
		t.Errorf("not deployed = %v, want s5,s6", res.NotDeployed)
	}
	for _, s := range []string{"s5", "s6"} {
		if contains(f.deployed, s) {
			t.Errorf("%s was deployed after the rollout stopped", s)
		}
	}
	if strings.Join(f.rolled, ",") != "s3" {
		t.Errorf("rolled back %v, want s3 (the stopping wave's store that went live; s4 never did)", f.rolled)
	}
	o := out.String()
	for _, want := range []string{"== canary (1/4): c", "== wave 1 (2/4): s1, s2", "== wave 2 (3/4): s3, s4", "rollout stopped after wave 2", "rolling back wave 2"} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q:\n%s", want, o)
		}
	}
	if strings.Contains(o, "wave 3 (4/4)") {
		t.Errorf("wave 3 was started:\n%s", o)
	}
}

// TestCanaryFailureStopsEverything: a canary that goes live but fails its
// verify stops the rollout before any wave, and is rolled back.
func TestCanaryFailureStopsEverything(t *testing.T) {
	ids := []string{"c", "s1", "s2"}
	f := &fakeFleet{fail: map[string]error{"c": fmt.Errorf("deploy failed: deployed, verify failed")}, live: map[string]bool{"c": true}}
	var out bytes.Buffer
	opts := fleetOptions{canary: "c", wave: 1, maxFailures: 5, rollbackWave: true}
	res := f.fleet(&out).run(context.Background(), planWaves(ids, opts), reqsFor(ids...), opts)
	if res.StoppedAt != "canary" || len(f.deployed) != 1 || strings.Join(f.rolled, ",") != "c" {
		t.Errorf("stopped at %q, deployed %v, rolled back %v\n%s", res.StoppedAt, f.deployed, f.rolled, out.String())
	}
	if !strings.Contains(out.String(), "the canary failed") {
		t.Errorf("output:\n%s", out.String())
	}
}

// TestDryRunPrintsThePlan: the plan names each store's wave, target and
// why it changes, against a real serve, and deploys nothing.
func TestDryRunPrintsThePlan(t *testing.T) {
	dir, data := envRepo(t)
	p := dir + "/slipway.yaml"
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, append(b, []byte("targets:\n  us-east-1: {driver: process}\n  default: {driver: process}\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	serve(t, data)
	code, out, stderr := run(t, "deploy", "-C", dir, "--state-dir", data, "--all", "--canary", "us", "--wave", "1", "--max-failures", "2", "--dry-run")
	if code != 0 {
		t.Fatalf("dry run: %d\n%s\n%s", code, out, stderr)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^canary\s+us\s+us-east-1 \(process\)\s+-\s+FIRST_DEPLOY$`),
		regexp.MustCompile(`(?m)^wave 1\s+eu\s+default \(process\)\s+-\s+FIRST_DEPLOY$`),
		regexp.MustCompile(`(?m)^wave 2\s+sports-brand\s+default \(process\)`),
		regexp.MustCompile(`3 store\(s\) in 3 step\(s\); the rollout stops after 2 failed store\(s\)\. Nothing was deployed`),
	} {
		if !want.MatchString(out) {
			t.Errorf("the plan lacks %s:\n%s", want, out)
		}
	}
	rs, err := server.NewClient(data).Releases(context.Background(), "us")
	if err != nil || len(rs) != 0 {
		t.Errorf("a dry run recorded releases: %v %v", rs, err)
	}
	if code, _, stderr := run(t, "deploy", "-C", dir, "--state-dir", data, "--all", "--canary", "nope", "--dry-run"); code != 2 || !strings.Contains(stderr, "--canary nope") {
		t.Errorf("unknown canary: %d %s", code, stderr)
	}
}
