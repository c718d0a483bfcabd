package push_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/api"
	"github.com/slipway-dev/slipway/internal/auth"
	"github.com/slipway-dev/slipway/internal/push"
)

// A CLI reports its rollout with PUT /v1/rollouts/{id}; a bad report is
// refused naming the field, a token may report only its own stores, and
// Rollouts lists what serve was told, newest first.
func TestRolloutReports(t *testing.T) {
	ctx := context.Background()
	svc, err := push.Open(ctx, push.Options{DataDir: t.TempDir()}, push.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop(ctx)
	mux := &muxRouter{http.NewServeMux()}
	svc.Mount(mux)
	put := func(stores, path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("PUT", path, strings.NewReader(body))
		req = req.WithContext(auth.WithIdentity(req.Context(), &auth.Identity{Name: "ci", Scope: auth.ScopeDeploy, Stores: stores, Via: "token"}))
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec
	}
	ro := api.Rollout{ID: "r-1", Status: api.RolloutRunning, Waves: []api.RolloutWave{
		{Name: "canary", Canary: true, Stores: []api.RolloutStore{{Store: "us", Status: api.RolloutLive, Release: "us-v2"}}},
		{Name: "wave 1", Stores: []api.RolloutStore{{Store: "eu", Status: api.RolloutDeploying}}}}}
	body, _ := json.Marshal(ro)
	if rec := put("", "/v1/rollouts/r-1", string(body)); rec.Code != http.StatusOK {
		t.Fatalf("a good report: %d %s", rec.Code, rec.Body.String())
	}
	for _, c := range []struct{ stores, path, body, want string }{
		{"", "/v1/rollouts/r-2", string(body), "in the path"},
		{"", "/v1/rollouts/r-1", strings.Replace(string(body), `"deploying"`, `"exploding"`, 1), "waves[1].stores[0].status"},
		{"", "/v1/rollouts/r-1", strings.Replace(string(body), `"store":"eu"`, `"store":"../eu"`, 1), "waves[1].stores[0].store"},
		{"", "/v1/rollouts/r-1", `{"id":"r-1","status":"running","waves":[],"x":1}`, "unknown field"},
		{"us*", "/v1/rollouts/r-1", string(body), "not eu"},
	} {
		rec := put(c.stores, c.path, c.body)
		if rec.Code < 400 || !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("%s with %s: %d %s (want an error naming %q)", c.path, c.body, rec.Code, rec.Body.String(), c.want)
		}
	}
	list := svc.Rollouts()
	if len(list) != 1 || list[0].Who != "ci" || list[0].Waves[1].Stores[0].Status != api.RolloutDeploying {
		t.Fatalf("rollouts: %+v", list)
	}
}
