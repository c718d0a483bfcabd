package server

import (
	"context"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/pipeline"
)

// Stored secrets: deploy-scoped to change, names only to read, refused to
// anonymous callers, and added to deploys (the app sees the value; a value the
// caller sends wins; the release hash marks it secret).
func TestStoredSecrets(t *testing.T) {
	h := startAPI(t, Options{})
	ctx := context.Background()
	local := NewClient(h.dir)
	anon, _ := NewRemoteClient(h.s.APIURL(), "")
	if _, err := anon.Secrets(ctx, "us"); apiCode(err) != 401 {
		t.Fatalf("anonymous list: %v", err)
	}
	reader, _ := NewRemoteClient(h.s.APIURL(), h.token("reader", auth.ScopeRead, ""))
	if _, err := reader.ChangeSecrets(ctx, "us", SecretsChange{Set: map[string]string{"K": "v"}}); apiCode(err) != 403 {
		t.Fatalf("read token sets a secret: %v", err)
	}
	const canary = "sk_api_canary_19af"
	if _, err := local.ChangeSecrets(ctx, "us", SecretsChange{Set: map[string]string{"STRIPE_KEY": ""}}); apiCode(err) != 400 {
		t.Errorf("empty value: %v", err)
	}
	if _, err := local.ChangeSecrets(ctx, "us", SecretsChange{Set: map[string]string{"PORT": canary}}); apiCode(err) != 400 || strings.Contains(err.Error(), canary) {
		t.Errorf("reserved name: %v", err)
	}
	r, err := local.ChangeSecrets(ctx, "us", SecretsChange{Set: map[string]string{"STRIPE_KEY": canary, "OTHER": "sent-wins-not"}})
	if err != nil || len(r.Secrets) != 2 {
		t.Fatalf("set: %v %+v", err, r)
	}
	names, err := reader.Secrets(ctx, "us")
	if err != nil || len(names) != 2 || names[0].Name != "OTHER" {
		t.Fatalf("list: %v %+v", err, names)
	}

	req := pipeline.DeployRequest{Store: "us", Kind: "build-deploy", Apps: []pipeline.AppDeploy{h.app("v1")},
		Env: map[string]string{"OTHER": "sent"}, Secrets: []string{"OTHER"}}
	rel, err, evs := h.deploy(req)
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	if _, body := h.get("us.localhost", "/env?k=STRIPE_KEY"); body != canary {
		t.Errorf("the app got STRIPE_KEY=%q, want the stored value", body)
	}
	if _, body := h.get("us.localhost", "/env?k=OTHER"); body != "sent" {
		t.Errorf("the app got OTHER=%q, want the value the request sent", body)
	}
	for _, e := range evs {
		if strings.Contains(e.Message, canary) {
			t.Errorf("event shows the secret: %s", e.Message)
		}
	}
	if !strings.Contains(strings.Join(rel.EnvNames, ","), "STRIPE_KEY") {
		t.Errorf("release env names %v lack STRIPE_KEY", rel.EnvNames)
	}
	if _, err := local.ChangeSecrets(ctx, "us", SecretsChange{Unset: []string{"STRIPE_KEY", "NEVER"}}); err != nil {
		t.Fatal(err)
	}
	if names, _ := local.Secrets(ctx, "us"); len(names) != 1 {
		t.Errorf("after unset: %+v", names)
	}
}
