package server

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/pipeline"
)

// A store stopped before serve restarts stays stopped after it (503, no
// instance) and `start` brings it back with its env and secrets, without a
// deploy-only; once started it comes back on the next restart.
func TestStoppedStoreAcrossServeRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	h := start(t, dir)
	secret := "sk_live_stopped_across_restart_42"
	rel, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c1", Apps: []pipeline.AppDeploy{h.app("v1")},
		Env: map[string]string{"GREETING": "hi", "STRIPE_KEY": secret}, Secrets: []string{"STRIPE_KEY"}})
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(dir)
	if err := c.Op(ctx, "stop", "us", nil); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if code, _ := h.get("us.localhost", "/release"); code != 503 {
		t.Fatalf("stopped store answers %d, want 503", code)
	}
	h.s.o.StopOnExit = false
	h.stop()

	h2 := start(t, dir)
	if code, body := h2.get("us.localhost", "/release"); code != 503 {
		t.Fatalf("after a serve restart the stopped store answers %d %q, want 503", code, body)
	}
	web := map[string]string{driver.LabelStore: "us", driver.LabelRole: "web"}
	for _, in := range h2.instances(web) {
		if in.State == "running" {
			t.Errorf("instance %s runs after the restart of a stopped store", in.Name)
		}
	}
	noFileHolds(t, dir, secret)
	if err := c.Op(ctx, "start", "us", nil); err != nil {
		t.Fatalf("start after a serve restart: %v", err)
	}
	if code, body := h2.get("us.localhost", "/release"); code != 200 || body != rel.ID {
		t.Fatalf("after start: %d %q, want the live release %s", code, body, rel.ID)
	}
	if _, body := h2.get("us.localhost", "/env?k=GREETING"); body != "hi" {
		t.Errorf("started instance: GREETING=%q", body)
	}
	if _, body := h2.get("us.localhost", "/env?k=STRIPE_KEY"); body != secret {
		t.Errorf("started instance lost its secret: %q", body)
	}
	h2.s.o.StopOnExit = false
	h2.stop()

	// Started again: the next serve keeps it up.
	h3 := start(t, dir)
	if code, body := h3.get("us.localhost", "/release"); code != 200 || body != rel.ID {
		t.Fatalf("a started store after another serve restart: %d %q", code, body)
	}
	if err := c.Op(ctx, "restart", "us", nil); err != nil {
		t.Errorf("restart: %v", err)
	}
}

// noFileHolds fails for every file under dir holding s in clear.
func noFileHolds(t *testing.T, dir, s string) {
	t.Helper()
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || fi.Size() > 64<<20 {
			return nil
		}
		if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(s)) {
			t.Errorf("%s holds the secret in clear", p)
		}
		return nil
	})
}
