package server

import (
	"context"
	"testing"

	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/pipeline"
)

// Over the remote API, day-two reads need a read token and operations a
// deploy token for the store; prune needs admin.
func TestRemoteOpsScopes(t *testing.T) {
	h := startAPI(t, Options{})
	ctx := context.Background()
	if _, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c1", Apps: []pipeline.AppDeploy{h.app("v1")}}); err != nil {
		t.Fatal(err)
	}
	url := h.s.APIURL()
	anon, _ := NewRemoteClient(url, "")
	if _, err := anon.PS(ctx, ""); apiCode(err) != 401 {
		t.Errorf("ps without a token: %v", err)
	}
	rc, _ := NewRemoteClient(url, h.token("reader", auth.ScopeRead, ""))
	if ps, err := rc.PS(ctx, "us"); err != nil || len(ps) != 1 {
		t.Errorf("read token, ps: %v %v", ps, err)
	}
	for _, op := range []string{"restart", "stop", "start", "remove"} {
		if err := rc.Op(ctx, op, "us", nil); apiCode(err) != 403 {
			t.Errorf("read token may %s: %v", op, err)
		}
	}
	if err := rc.Scale(ctx, "us", map[string]int{"web": 2}, nil); apiCode(err) != 403 {
		t.Errorf("read token may scale: %v", err)
	}
	if _, err := rc.Run(ctx, "us", RunRequest{Cmd: []string{"./testapp", "env", "X"}}, nil, nil); apiCode(err) != 403 {
		t.Errorf("read token may run: %v", err)
	}
	eu, _ := NewRemoteClient(url, h.token("eu-ci", auth.ScopeDeploy, "eu*"))
	if err := eu.Op(ctx, "restart", "us", nil); apiCode(err) != 403 {
		t.Errorf("eu* token restarts us: %v", err)
	}
	if ps, err := eu.PS(ctx, ""); err != nil || len(ps) != 0 {
		t.Errorf("eu* token sees us instances: %v %v", ps, err)
	}
	if _, err := eu.Prune(ctx, nil); apiCode(err) != 403 {
		t.Errorf("deploy token prunes: %v", err)
	}
	us, _ := NewRemoteClient(url, h.token("us-ci", auth.ScopeDeploy, "us"))
	if err := us.Op(ctx, "restart", "us", nil); err != nil {
		t.Errorf("us token restarts us: %v", err)
	}
	if code, err := us.Run(ctx, "us", RunRequest{Cmd: []string{"./testapp", "exit", "5"}}, nil, nil); err != nil || code != 5 {
		t.Errorf("remote run: %d %v", code, err)
	}
}
