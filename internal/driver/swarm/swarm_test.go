//go:build integration

package swarm

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/driver/testapp"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// env is one test's swarm, registry and image.
type env struct {
	run string
	img driver.Image
}

func setup(t *testing.T) *env {
	t.Helper()
	if testenv.RequireSwarm(t, map[string]string{"region": "us-east-1"}) == nil {
		return nil
	}
	reg := testenv.StartRegistry(t)
	e := &env{run: "sw-" + randHex(4)}
	t.Cleanup(func() { testenv.SwarmCleanup(t, testLabel, e.run) })
	app := testapp.Image(t, testapp.Options{Env: map[string]string{"TESTAPP_MARKER": "swarm-" + e.run}})
	e.img = push(t, reg, onBase(t, testenv.BusyboxImage(t), app))
	return e
}

func (e *env) open(t *testing.T, opts ...Option) *Driver {
	t.Helper()
	d, err := New(context.Background(), append([]Option{WithHost(testenv.DockerHost()), WithLabels(map[string]string{testLabel: e.run})}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func (e *env) spec(name string) driver.Spec {
	return driver.Spec{Image: e.img, Name: e.run + "-" + name, Env: map[string]string{}, Port: testapp.DefaultPort,
		Labels: driver.ManagedLabels(e.run, "us", "web", name, "web"), StopTimeout: 2 * time.Second}
}

func httpGet(t *testing.T, addr, path string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + path)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s%s: %v", addr, path, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSecretsNotInspectable: the env reaches the app but neither the
// service, its containers nor their labels show a value.
func TestSecretsNotInspectable(t *testing.T) {
	e := setup(t)
	if e == nil {
		return
	}
	d := e.open(t, WithRegion("us-east-1"))
	secret := "sk_live_" + randHex(12)
	spec := e.spec("secret")
	spec.Env["API_SECRET"] = secret
	inst, err := d.Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer d.Stop(context.Background(), inst.ID)
	if got := httpGet(t, inst.Addr, "/env?k=API_SECRET"); got != secret {
		t.Fatalf("the app sees API_SECRET = %q", got)
	}
	svc := testenv.Docker(t, "service", "inspect", inst.ID)
	ctrs := testenv.Docker(t, "ps", "-aq", "--filter", "label=com.docker.swarm.service.id="+inst.ID)
	ctr := testenv.Docker(t, append([]string{"inspect"}, strings.Fields(ctrs)...)...)
	for what, out := range map[string]string{"docker service inspect": svc, "docker inspect (container)": ctr} {
		if strings.Contains(out, secret) {
			t.Errorf("%s shows the secret value", what)
		}
		if !strings.Contains(out, EnvSecretTarget) {
			t.Errorf("%s does not mention the env secret %s: did the check look at the right thing?", what, EnvSecretTarget)
		}
	}
	if err := d.Stop(context.Background(), inst.ID); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if left := testenv.Docker(t, "secret", "ls", "-q", "--filter", "label="+testLabel+"="+e.run); left != "" {
		t.Errorf("Stop left env secrets: %s", left)
	}
	if left := testenv.Docker(t, "service", "ls", "-q", "--filter", "label="+testLabel+"="+e.run); left != "" {
		t.Errorf("Stop left services: %s", left)
	}
}

// TestPlacementByRegion: a driver for another region's nodes fails Start
// with a clear error and leaves nothing; the node's region runs it.
func TestPlacementByRegion(t *testing.T) {
	e := setup(t)
	if e == nil {
		return
	}
	eu := e.open(t, WithRegion("eu-west-1"))
	t0 := time.Now()
	_, err := eu.Start(context.Background(), e.spec("eu"))
	if err == nil || !strings.Contains(err.Error(), "no node can run it") || !strings.Contains(err.Error(), "eu-west-1") {
		t.Fatalf("Start on a region without nodes: %v, want a placement error naming eu-west-1", err)
	}
	t.Logf("failed in %s: %v", time.Since(t0).Round(time.Millisecond), err)
	if got, _ := eu.List(context.Background(), nil); len(got) != 0 {
		t.Errorf("a failed Start left %+v", got)
	}
	us := e.open(t, WithRegion("us-east-1"), WithResources(0.5, 64<<20))
	inst, err := us.Start(context.Background(), e.spec("us"))
	if err != nil {
		t.Fatalf("Start in us-east-1: %v", err)
	}
	defer us.Stop(context.Background(), inst.ID)
	got := testenv.Docker(t, "service", "inspect", "--format",
		"{{.Spec.TaskTemplate.Placement.Constraints}} {{.Spec.TaskTemplate.Resources.Limits.MemoryBytes}} {{.Spec.TaskTemplate.Resources.Limits.NanoCPUs}}", inst.ID)
	if got != "[node.labels.region==us-east-1] 67108864 500000000" {
		t.Errorf("service placement and limits = %q", got)
	}
}

// TestReplicas: one instance with two tasks answers on both addresses.
func TestReplicas(t *testing.T) {
	e := setup(t)
	if e == nil {
		return
	}
	// One node: the engine picks each task's port.
	d := e.open(t, WithReplicas(2), WithPinnedPorts(false))
	inst, err := d.Start(context.Background(), e.spec("replicas"))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer d.Stop(context.Background(), inst.ID)
	if len(inst.Addrs) != 2 || inst.Addrs[0] != inst.Addr {
		t.Fatalf("Addrs = %v (Addr %s), want two task addresses, Addr first", inst.Addrs, inst.Addr)
	}
	for _, a := range inst.Addrs {
		if got := httpGet(t, a, "/release"); got != "swarm-"+e.run {
			t.Errorf("%s: /release = %q", a, got)
		}
	}
}
