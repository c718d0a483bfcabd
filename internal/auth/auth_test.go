package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/state"
)

func openGate(t *testing.T) *Gate {
	t.Helper()
	ctx := context.Background()
	db, err := state.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tk, err := OpenTokens(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	au, err := OpenAudit(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	// Opening twice must not re-run the schema.
	if _, err := OpenTokens(ctx, db); err != nil {
		t.Fatal(err)
	}
	return &Gate{Tokens: tk, Audit: au}
}

func TestTokensCreateVerifyRevoke(t *testing.T) {
	g := openGate(t)
	ctx := context.Background()
	secret, tok, err := g.Tokens.Create(ctx, "ci", ScopeDeploy, "eu-*", "unix:root")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, TokenPrefix) || len(secret) < 40 || tok.Scope != ScopeDeploy {
		t.Fatalf("token %q %+v", secret, tok)
	}
	if _, _, err := g.Tokens.Create(ctx, "ci", ScopeRead, "", ""); !errors.Is(err, ErrTokenExists) {
		t.Fatalf("duplicate name: %v", err)
	}
	for _, bad := range []struct{ name, scope, glob string }{{"", "read", ""}, {"a b", "read", ""}, {"x", "root", ""}, {"x", "read", "[a"}} {
		if _, _, err := g.Tokens.Create(ctx, bad.name, Scope(bad.scope), bad.glob, ""); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	id, err := g.Tokens.Verify(ctx, secret)
	if err != nil || id.Name != "ci" || id.Scope != ScopeDeploy || id.Stores != "eu-*" {
		t.Fatalf("verify: %+v %v", id, err)
	}
	ts, err := g.Tokens.List(ctx)
	if err != nil || len(ts) != 1 || ts[0].LastUsed.IsZero() {
		t.Fatalf("list: %+v %v", ts, err)
	}
	// The secret is nowhere in the database: only its hash.
	var n int
	g.Tokens.db.QueryRow("SELECT COUNT(*) FROM auth_tokens WHERE hash = ? OR name = ?", secret, secret).Scan(&n)
	if n != 0 {
		t.Fatal("the secret is stored in clear")
	}
	if _, err := g.Tokens.Verify(ctx, secret+"x"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("wrong secret: %v", err)
	}
	if err := g.Tokens.Revoke(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Tokens.Verify(ctx, secret); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("revoked: %v", err)
	}
	if err := g.Tokens.Revoke(ctx, "ci"); !errors.Is(err, ErrNoToken) {
		t.Fatalf("revoke twice: %v", err)
	}
	// The name is free again once revoked.
	if _, _, err := g.Tokens.Create(ctx, "ci", ScopeRead, "", ""); err != nil {
		t.Fatal(err)
	}
}

func TestGateScopesAndAudit(t *testing.T) {
	g := openGate(t)
	ctx := context.Background()
	read, _, _ := g.Tokens.Create(ctx, "reader", ScopeRead, "", "")
	deploy, _, _ := g.Tokens.Create(ctx, "eu-ci", ScopeDeploy, "eu-*", "")
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, r *http.Request) {
		Note(r.Context(), r.PathValue("store"), "deployed "+r.PathValue("store"))
		w.WriteHeader(http.StatusNoContent)
	}
	mux.Handle("POST /v1/stores/{store}/deploy", RequireScope(ScopeDeploy, http.HandlerFunc(ok)))
	mux.Handle("GET /v1/status", RequireScope(ScopeRead, http.HandlerFunc(ok)))
	mux.Handle("GET /v1/tokens", RequireScope(ScopeAdmin, http.HandlerFunc(ok)))
	remote := httptest.NewServer(g.Remote(mux))
	defer remote.Close()
	local := httptest.NewServer(g.Local(mux))
	defer local.Close()

	call := func(base, method, path, token string) int {
		req, _ := http.NewRequest(method, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		base, method, path, token string
		want                      int
	}{
		{remote.URL, "GET", "/v1/status", "", 401},
		{remote.URL, "GET", "/v1/status", "slw_nope", 401},
		{remote.URL, "GET", "/v1/status", read, 204},
		{remote.URL, "POST", "/v1/stores/eu-de/deploy", "", 401},
		{remote.URL, "POST", "/v1/stores/eu-de/deploy", read, 403},
		{remote.URL, "POST", "/v1/stores/us/deploy", deploy, 403},
		{remote.URL, "POST", "/v1/stores/eu-de/deploy", deploy, 204},
		{remote.URL, "GET", "/v1/tokens", deploy, 403},
		{local.URL, "GET", "/v1/tokens", "", 204},
		{local.URL, "POST", "/v1/stores/us/deploy", "", 204},
	} {
		if got := call(c.base, c.method, c.path, c.token); got != c.want {
			t.Errorf("%s %s with %q: %d, want %d", c.method, c.path, c.token, got, c.want)
		}
	}
	es, err := g.Audit.List(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	// Only the five POSTs are audited, refusals included, newest first.
	if len(es) != 5 {
		t.Fatalf("audit: %d entries: %+v", len(es), es)
	}
	if e := es[0]; e.Via != "socket" || e.Status != 204 || e.Store != "us" || e.Action != "deployed us" {
		t.Errorf("local deploy: %+v", e)
	}
	if e := es[1]; e.Actor != "eu-ci" || e.Via != "token" || e.Status != 204 || e.Store != "eu-de" || e.Remote == "" || e.At.IsZero() {
		t.Errorf("remote deploy: %+v", e)
	}
	if e := es[2]; e.Actor != "eu-ci" || e.Status != 403 || e.Store != "us" {
		t.Errorf("refused deploy: %+v", e)
	}
	if e := es[4]; e.Actor != "anonymous" || e.Status != 401 {
		t.Errorf("anonymous deploy: %+v", e)
	}
	if us, _ := g.Audit.List(ctx, Filter{Store: "us"}); len(us) != 2 {
		t.Errorf("filter by store: %+v", us)
	}
}

func TestScopeOrder(t *testing.T) {
	if !ScopeAdmin.Allows(ScopeDeploy) || !ScopeDeploy.Allows(ScopeRead) || ScopeRead.Allows(ScopeDeploy) || Scope("").Allows(ScopeRead) {
		t.Fatal("scope order")
	}
	if _, err := ParseScope("write"); err == nil {
		t.Fatal("unknown scope accepted")
	}
}
