//go:build integration

package server

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-dev/slipway/internal/api"
	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/driver/testapp"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/state"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// TestStoresLandOnTheirRegionsTarget: with the node labelled
// region=us-east-1, store us (us-east-1: swarm) runs as a swarm service
// placed on that region, store eu (eu-west-1: docker) as a plain container,
// and store ap, whose target's engine does not answer, fails alone with an
// error naming its target while the others serve.
func TestStoresLandOnTheirRegionsTarget(t *testing.T) {
	if testenv.RequireSwarm(t, map[string]string{"region": "us-east-1"}) == nil {
		return
	}
	reg := testenv.StartRegistry(t)
	project := fmt.Sprintf("regions%d", time.Now().UnixNano()%100000)
	t.Cleanup(func() { testenv.SwarmCleanup(t, driver.LabelProject, project) })
	img := shellImage(t, testapp.Image(t, testapp.Options{Env: map[string]string{"TESTAPP_MARKER": project}}))
	ref, digest := pushTo(t, reg, project+"/web", img)

	dir := t.TempDir()
	h := serveWith(t, Options{DataDir: dir, HTTPAddr: "127.0.0.1:0", Log: io.Discard, StopOnExit: true,
		// serve deploys only from registries it is told about (serve --allow-registry).
		Limits: api.Limits{Registries: []string{reg.Addr}},
		Targets: map[string]*config.Target{
			"us-east-1":  {Driver: config.DriverSwarm, Docker: testenv.DockerHost()},
			"eu-west-1":  {Driver: config.DriverDocker, Docker: testenv.DockerHost()},
			"ap-south-1": {Driver: config.DriverDocker, Docker: "tcp://127.0.0.1:1"},
		},
		Regions: map[string]string{"us": "us-east-1", "eu": "eu-west-1", "ap": "ap-south-1"}})

	deploy := func(store string) error {
		_, err, evs := h.deploy(pipeline.DeployRequest{Project: project, Store: store, Commit: "c1", Kind: state.KindBuildDeploy,
			Apps: []pipeline.AppDeploy{{App: "web", Image: driver.Image{Ref: ref}, Ref: ref, Digest: digest, Port: testapp.DefaultPort,
				Health: proxy.HealthCheck{Path: "/healthz", Interval: 100 * time.Millisecond, Timeout: 2 * time.Second, Deadline: 60 * time.Second},
				Hosts:  []string{store + ".localhost"}}}})
		if err != nil {
			t.Logf("deploy %s: %v\n%v", store, err, evs)
		}
		return err
	}
	for _, store := range []string{"us", "eu"} {
		if err := deploy(store); err != nil {
			t.Fatalf("deploy %s: %v", store, err)
		}
		if code, body := h.get(store+".localhost", "/env?k=SLIPWAY_STORE_ID"); code != 200 || body != store {
			t.Errorf("%s through the router: %d %q", store, code, body)
		}
	}
	err := deploy("ap")
	if err == nil || !strings.Contains(err.Error(), "target ap-south-1 is unreachable") {
		t.Errorf("deploy ap: %v, want a failure naming its unreachable target", err)
	}

	// us is a swarm service placed on us-east-1; eu a plain container.
	svc := testenv.Docker(t, "service", "ls", "-q", "--filter", "label="+driver.LabelStore+"=us", "--filter", "label="+driver.LabelProject+"="+project)
	if svc == "" {
		t.Fatalf("store us has no swarm service")
	}
	if got := testenv.Docker(t, "service", "inspect", "--format", "{{.Spec.TaskTemplate.Placement.Constraints}}", svc); got != "[node.labels.region==us-east-1]" {
		t.Errorf("us placement = %s", got)
	}
	eu := testenv.Docker(t, "ps", "-q", "--filter", "label="+driver.LabelStore+"=eu", "--filter", "label="+driver.LabelProject+"="+project)
	if eu == "" {
		t.Fatalf("store eu has no container")
	}
	if got := testenv.Docker(t, "inspect", "--format", `{{index .Config.Labels "com.docker.swarm.service.id"}}`, eu); got != "" {
		t.Errorf("store eu runs as a swarm task (%s), want a plain container on the docker target", got)
	}
	if n := testenv.Docker(t, "service", "ls", "-q", "--filter", "label="+driver.LabelStore+"=eu"); n != "" {
		t.Errorf("store eu has a swarm service")
	}
	// A second deploy replaces the service: old ones do not pile up.
	if err := deploy("us"); err != nil {
		t.Fatalf("redeploy us: %v", err)
	}
	if got := strings.Fields(testenv.Docker(t, "service", "ls", "-q", "--filter", "label="+driver.LabelStore+"=us", "--filter", "label="+driver.LabelProject+"="+project)); len(got) != 1 {
		t.Errorf("after a redeploy store us has %d services, want 1", len(got))
	}
	if code, body := h.get("us.localhost", "/env?k=SLIPWAY_RELEASE"); code != 200 || body != "us-v2" {
		t.Errorf("us after the redeploy: %d %q", code, body)
	}
}

// shellImage puts img on the busybox image: swarm tasks load their env with /bin/sh.
func shellImage(t *testing.T, img v1.Image) v1.Image {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out, err := mutate.AppendLayers(testenv.BusyboxImage(t), layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	cfg.Env = append(cfg.Env, "PATH=/bin")
	if out, err = mutate.Config(out, cfg); err != nil {
		t.Fatal(err)
	}
	return out
}

func pushTo(t *testing.T, reg *testenv.Registry, repo string, img v1.Image) (ref, digest string) {
	t.Helper()
	tag, err := name.NewTag(reg.Repo(repo) + ":c1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return reg.Repo(repo) + "@" + d.String(), d.String()
}
