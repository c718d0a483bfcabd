package source

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/compose"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// GitHub's documented example for validating webhook deliveries.
func TestGitHubSignatureTestVector(t *testing.T) {
	secret := []byte("It's a Secret to Everybody")
	body := []byte("Hello, World!")
	const want = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if got := Sign(secret, body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	h := http.Header{}
	h.Set("X-Hub-Signature-256", "sha256="+want)
	if err := Verify(GitHub, secret, h, body); err != nil {
		t.Fatalf("GitHub's own signature rejected: %v", err)
	}
	if err := Verify(GitHub, secret, h, []byte("Hello, World?")); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("another body: got %v, want ErrBadSignature", err)
	}
}

func TestVerifyFailsClosed(t *testing.T) {
	secret := []byte("s3cret")
	body := []byte(`{"ref":"refs/heads/main"}`)
	sig := Sign(secret, body)
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	cases := []struct {
		name     string
		provider string
		secret   []byte
		h        http.Header
		want     error
	}{
		{"github ok", GitHub, secret, hdr("X-Hub-Signature-256", "sha256="+sig), nil},
		{"github upper-case hex", GitHub, secret, hdr("X-Hub-Signature-256", "sha256="+strings.ToUpper(sig)), nil},
		{"github no prefix", GitHub, secret, hdr("X-Hub-Signature-256", sig), ErrBadSignature},
		{"github sha1 header only", GitHub, secret, hdr("X-Hub-Signature", "sha1=00"), ErrNoSignature},
		{"github wrong secret", GitHub, []byte("other"), hdr("X-Hub-Signature-256", "sha256="+sig), ErrBadSignature},
		{"github truncated", GitHub, secret, hdr("X-Hub-Signature-256", "sha256="+sig[:40]), ErrBadSignature},
		{"github no secret configured", GitHub, nil, hdr("X-Hub-Signature-256", "sha256="+sig), ErrNotConfigured},
		{"github empty secret", GitHub, []byte{}, hdr("X-Hub-Signature-256", "sha256="+Sign(nil, body)), ErrNotConfigured},
		{"gitea ok", Gitea, secret, hdr("X-Gitea-Signature", sig), nil},
		{"gitea missing", Gitea, secret, hdr(), ErrNoSignature},
		{"gitea bad", Gitea, secret, hdr("X-Gitea-Signature", "zz"+sig[2:]), ErrBadSignature},
		{"gitlab ok", GitLab, secret, hdr("X-Gitlab-Token", "s3cret"), nil},
		{"gitlab bad", GitLab, secret, hdr("X-Gitlab-Token", "s3cre"), ErrBadSignature},
		{"gitlab missing", GitLab, secret, hdr(), ErrNoSignature},
		{"gitlab none configured", GitLab, nil, hdr("X-Gitlab-Token", ""), ErrNotConfigured},
	}
	for _, c := range cases {
		err := Verify(c.provider, c.secret, c.h, body)
		if !errors.Is(err, c.want) && !(c.want == nil && err == nil) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func TestReadSecretRefusesEmpty(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	if _, err := ReadSecret(empty); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty secret: %v", err)
	}
	ok := filepath.Join(dir, "ok")
	os.WriteFile(ok, []byte("abc\n"), 0o600)
	if s, err := ReadSecret(ok); err != nil || string(s) != "abc" {
		t.Fatalf("ReadSecret = %q, %v", s, err)
	}
}

func TestParseEvents(t *testing.T) {
	gh := http.Header{}
	gh.Set("X-GitHub-Event", "push")
	gh.Set("X-GitHub-Delivery", "d-1")
	ev, err := Parse(GitHub, gh, []byte(`{"ref":"refs/heads/main","before":"a","after":"1111111111111111111111111111111111111111",
		"head_commit":{"id":"1111111111111111111111111111111111111111","message":"fix header [skip deploy]"},
		"pusher":{"name":"octo"},"repository":{"clone_url":"https://evil.example/x.git"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Kind != EventPush || ev.Branch != "main" || ev.Delivery != "d-1" || SkipMarker(ev.HeadMessage) != "[skip deploy]" || ev.Pusher != "octo" {
		t.Fatalf("github push parsed as %+v", ev)
	}
	gl := http.Header{}
	gl.Set("X-Gitlab-Event", "Tag Push Hook")
	gl.Set("X-Gitlab-Event-UUID", "u-1")
	ev, err = Parse(GitLab, gl, []byte(`{"object_kind":"tag_push","ref":"refs/tags/v1","after":"2222222222222222222222222222222222222222","commits":[]}`))
	if err != nil || ev.Tag != "v1" || ev.Branch != "" || ev.Delivery != "u-1" {
		t.Fatalf("gitlab tag push parsed as %+v, %v", ev, err)
	}
	gl.Set("X-Gitlab-Event", "Push Hook")
	ev, err = Parse(GitLab, gl, []byte(`{"object_kind":"push","ref":"refs/heads/main","after":"3333333333333333333333333333333333333333","checkout_sha":"3333333333333333333333333333333333333333",
		"commits":[{"id":"3333333333333333333333333333333333333333","message":"x [skip ci]"},{"id":"4444444444444444444444444444444444444444","message":"older"}],"user_username":"gl"}`))
	if err != nil || ev.Branch != "main" || SkipMarker(ev.HeadMessage) != "[skip ci]" || ev.Pusher != "gl" {
		t.Fatalf("gitlab push parsed as %+v, %v", ev, err)
	}
	gt := http.Header{}
	gt.Set("X-Gitea-Event", "push")
	gt.Set("X-Gitea-Delivery", "g-1")
	ev, err = Parse(Gitea, gt, []byte(`{"ref":"refs/heads/dev","after":"0000000000000000000000000000000000000000"}`))
	if err != nil || ev.Branch != "dev" || !ev.Deleted {
		t.Fatalf("gitea delete parsed as %+v, %v", ev, err)
	}
	gh.Set("X-GitHub-Event", "ping")
	if ev, _ := Parse(GitHub, gh, []byte(`{"zen":"x"}`)); ev.Kind != EventPing {
		t.Fatalf("ping parsed as %+v", ev)
	}
}

func TestRepoFetchAndChanges(t *testing.T) {
	ctx := context.Background()
	g := testenv.NewGitRepo(t)
	r, err := Open(ctx, Options{URL: g.Bare, Branch: "main", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	first, err := r.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Never deployed: every store is new.
	_, chs, err := r.Changes(ctx, first, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(chs) != 3 || !chs[0].Changed {
		t.Fatalf("first commit: %+v", chs)
	}
	live := map[string]string{"us": first, "eu": first, "sports-brand": first}

	// The base next.js header is overridden by fashion-brand, which us and eu inherit: nothing changes.
	c2 := g.Commit("main", "base header", map[string]string{"apps/storefront-unified-nextjs/components/header.js": "module.exports = 'new base header';\n"})
	if got, err := r.Fetch(ctx); err != nil || got != c2 {
		t.Fatalf("Fetch = %s, %v; want %s", got, err, c2)
	}
	_, chs, err = r.Changes(ctx, c2, live, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range chs {
		if ch.Changed {
			t.Errorf("an overridden base file changed %s: %+v", ch.Store, ch)
		}
	}

	// us's own file: only us, STORE_CHANGED.
	c3 := g.Commit("main", "us locale", map[string]string{"apps/stores/fashion-brand/stores/us/storefront-unified-nextjs/config/locale.json": "{\"locale\":\"en-US\",\"x\":1}\n"})
	r.Fetch(ctx)
	_, chs, err = r.Changes(ctx, c3, live, nil)
	if err != nil {
		t.Fatal(err)
	}
	changed := map[string][]compose.Reason{}
	for _, ch := range chs {
		if ch.Changed {
			changed[ch.Store] = ch.Reasons
		}
	}
	if len(changed) != 1 || !slices.Equal(changed["us"], []compose.Reason{compose.StoreChanged}) {
		t.Fatalf("us's change: %+v", changed)
	}

	// The base footer: us inherits it (BASE_APP_CHANGED), eu overrides it.
	c4 := g.Commit("main", "base footer", map[string]string{"apps/storefront-unified-nextjs/components/footer.js": "module.exports = 'new footer';\n"})
	r.Fetch(ctx)
	_, chs, err = r.Changes(ctx, c4, map[string]string{"us": c3, "eu": c3, "sports-brand": c3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	changed = map[string][]compose.Reason{}
	for _, ch := range chs {
		if ch.Changed {
			changed[ch.Store] = ch.Reasons
		}
	}
	if len(changed) != 1 || !slices.Equal(changed["us"], []compose.Reason{compose.BaseAppChanged}) {
		t.Fatalf("base footer change: %+v", changed)
	}

	// A commit on another branch is not fetched by the branch fetch, but by id.
	other := g.Commit("feature", "elsewhere", map[string]string{"README.md": "x\n"})
	if r.Has(ctx, other) {
		t.Fatal("a commit of another branch was fetched with the branch")
	}
	if err := r.FetchCommit(ctx, other); err != nil {
		t.Fatal(err)
	}

	// The snapshot is the commit's exact tree: no .git, the commit's content.
	dir, release, err := r.Snapshot(ctx, c3)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
		t.Fatal("the snapshot has a .git")
	}
	b, err := os.ReadFile(filepath.Join(dir, "apps/stores/fashion-brand/stores/us/storefront-unified-nextjs/config/locale.json"))
	if err != nil || !strings.Contains(string(b), `"x":1`) {
		t.Fatalf("snapshot content: %q, %v", b, err)
	}
	rev, err := r.Revision(ctx, c3)
	if err != nil || rev.Commit != c3 {
		t.Fatalf("Revision = %+v, %v", rev, err)
	}
}

func TestCheckURLRefusesCredentials(t *testing.T) {
	if err := CheckURL("https://user:tok@example.test/r.git"); err == nil {
		t.Fatal("a URL with a password was accepted")
	}
	if err := CheckURL("--upload-pack=evil"); err == nil {
		t.Fatal("an option-looking URL was accepted")
	}
	for _, ok := range []string{"https://example.test/r.git", "git@example.test:o/r.git", "/srv/r.git"} {
		if err := CheckURL(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	if err := CheckBranch("-x"); err == nil {
		t.Error("branch -x accepted")
	}
}

// Describe reads the commit object through the cache's reader; it says what git show says.
func TestDescribeMatchesGitShow(t *testing.T) {
	ctx := context.Background()
	g := testenv.NewGitRepo(t)
	c := g.Commit("main", "subject line\n\nbody one\nbody two", map[string]string{"x.txt": "x\n"})
	r, err := Open(ctx, Options{URL: g.Bare, Branch: "main", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := r.Describe(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Split(testenv.Git(t, g.Clone, "show", "-s", "--format=%an%x00%ct%x00%B", c), "\x00")
	if got.SHA != c || got.Author != want[0] || strconv.FormatInt(got.Time.Unix(), 10) != want[1] ||
		got.Message != strings.TrimSpace(want[2]) || got.Subject != "subject line" {
		t.Fatalf("Describe = %+v, git show says %q", got, want)
	}
	if _, err := r.Describe(ctx, strings.Repeat("1", 40)); err == nil {
		t.Fatal("an unknown commit was described")
	}
}
