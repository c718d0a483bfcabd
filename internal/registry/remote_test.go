package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/slipway-dev/slipway/internal/image"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// anonymous keeps tests away from the machine's Docker config.
var anonymous = WithKeychain(authn.NewMultiKeychain())

func TestRemotePublishSkipsWhatIsThere(t *testing.T) {
	t.Parallel()
	reg := testenv.StartRegistry(t)
	px := newProxy(t, reg)
	dir := appDir(t, "v1")
	img := build(t, testenv.BusyboxImage(t), dir)
	ref := mustRef(t, px.Addr()+"/shop/web:abc123")

	var mu sync.Mutex
	var last Progress
	pub := NewRemote(anonymous, WithProgress(func(p Progress) { mu.Lock(); last = p; mu.Unlock() }))

	d, err := pub.Publish(context.Background(), ref, img)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := img.Digest(); d.DigestStr() != want.String() {
		t.Fatalf("published %s, image is %s", d, want)
	}
	if px.count("blob-upload") == 0 || px.count("manifest-put") != 1 {
		t.Fatalf("first publish: %v", px.snapshot())
	}
	if !last.Finished || last.BytesDone != last.BytesTotal || last.BlobsDone != last.BlobsTotal || last.BlobsTotal != 3 {
		t.Errorf("final progress %+v", last)
	}

	// What landed is a valid image with the same digest.
	pulled, err := remote.Image(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(pulled); err != nil {
		t.Fatalf("validate pulled image: %v", err)
	}

	// Re-publish the same image, and a fresh build of the same directory:
	// nothing uploaded, no manifest written, layer not even compressed.
	for _, again := range []struct {
		what string
		img  func() any
	}{{"same image", nil}, {"rebuilt image", nil}} {
		px.reset()
		i := img
		if again.what == "rebuilt image" {
			i = build(t, testenv.BusyboxImage(t), dir)
		}
		d2, err := pub.Publish(context.Background(), ref, i)
		if err != nil {
			t.Fatal(err)
		}
		if d2 != d {
			t.Errorf("%s: digest %s, want %s", again.what, d2, d)
		}
		if n, m := px.count("blob-upload"), px.count("manifest-put"); n != 0 || m != 0 {
			t.Errorf("%s: %d blob uploads, %d manifest PUTs; want 0 and 0 (%v)", again.what, n, m, px.snapshot())
		}
		if !last.UpToDate {
			t.Errorf("%s: progress did not say up to date: %+v", again.what, last)
		}
	}

	// Exists.
	got, ok, err := pub.Exists(context.Background(), ref)
	if err != nil || !ok || got.String() != d.DigestStr() {
		t.Errorf("Exists = %s %v %v, want %s true", got, ok, err, d.DigestStr())
	}
	_, ok, err = pub.Exists(context.Background(), mustRef(t, px.Addr()+"/shop/web:nope"))
	if err != nil || ok {
		t.Errorf("Exists(missing tag) = %v %v, want false nil", ok, err)
	}

	// A changed app uploads only its own layer: the base is there already.
	px.reset()
	if _, err := pub.Publish(context.Background(), ref, build(t, testenv.BusyboxImage(t), appDir(t, "v2"))); err != nil {
		t.Fatal(err)
	}
	// Layer: POST + PATCH + PUT; config: the same. Base layer: HEAD only.
	if n := px.count("blob-upload"); n != 6 {
		t.Errorf("changed app: %d blob upload requests, want 6 (layer + config): %v", n, px.snapshot())
	}
}

func TestRemoteCrossRepoMount(t *testing.T) {
	t.Parallel()
	reg := testenv.StartRegistry(t)
	px := newProxy(t, reg)
	baseRef := px.Addr() + "/base/busybox:1"
	if _, err := NewRemote(anonymous).Publish(context.Background(), mustRef(t, baseRef), testenv.BusyboxImage(t)); err != nil {
		t.Fatal(err)
	}
	base, err := image.LoadBase(context.Background(), baseRef, image.WithKeychain(authn.NewMultiKeychain()))
	if err != nil {
		t.Fatal(err)
	}
	img := build(t, base, appDir(t, "m")) // reads the base config: one GET
	px.reset()
	if _, err := NewRemote(anonymous).Publish(context.Background(), mustRef(t, px.Addr()+"/shop/web:1"), img); err != nil {
		t.Fatal(err)
	}
	if n := px.count("blob-mount"); n != 1 {
		t.Errorf("%d mount requests, want 1 for the base layer: %v", n, px.snapshot())
	}
	if n := px.count("blob-get"); n != 0 {
		t.Errorf("base layer was downloaded (%d GETs) instead of mounted", n)
	}
}

func TestRemoteAuth(t *testing.T) {
	t.Parallel()
	const user, password = "ci", "s3cret-Passw0rd"
	reg := testenv.StartRegistry(t, testenv.WithHtpasswd(user, password))
	img := build(t, nil, appDir(t, "auth"))
	ref := mustRef(t, reg.Addr+"/shop/web:1")
	ctx := context.Background()

	if _, err := NewRemote(WithBasicAuth(user, password)).Publish(ctx, ref, img); err != nil {
		t.Fatalf("good credentials: %v", err)
	}
	if _, ok, err := NewRemote(WithBasicAuth(user, password)).Exists(ctx, ref); err != nil || !ok {
		t.Fatalf("Exists with good credentials: %v %v", ok, err)
	}

	for _, tc := range []struct {
		name string
		opt  RemoteOption
		pass string
	}{
		{"wrong password", WithBasicAuth(user, "wrong-"+password), "wrong-" + password},
		{"no credentials", anonymous, password},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewRemote(tc.opt).Publish(ctx, mustRef(t, reg.Addr+"/shop/web:2"), img)
			if err == nil {
				t.Fatal("publish succeeded")
			}
			msg := err.Error()
			t.Logf("%s", msg)
			if !errors.Is(err, ErrUnauthorized) || !strings.Contains(msg, "401") && !strings.Contains(strings.ToLower(msg), "unauthorized") {
				t.Errorf("err = %q, want ErrUnauthorized saying 401/unauthorized", msg)
			}
			if strings.Contains(msg, tc.pass) || strings.Contains(msg, password) {
				t.Errorf("error leaks the password: %q", msg)
			}
			if !strings.Contains(msg, reg.Addr+"/shop/web:2") {
				t.Errorf("error does not name the reference: %q", msg)
			}
		})
	}
}

func TestRemoteUnreachable(t *testing.T) {
	t.Parallel()
	port := testenv.FreePort(t) // nothing listens there
	ref := mustRef(t, fmt.Sprintf("127.0.0.1:%d/shop/web:1", port))
	start := time.Now()
	_, err := NewRemote(anonymous).Publish(context.Background(), ref, build(t, nil, appDir(t, "x")))
	took := time.Since(start)
	if err == nil {
		t.Fatal("publish to a closed port succeeded")
	}
	if !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), ref.String()) {
		t.Errorf("err = %v, want it to name the ref and say connection refused", err)
	}
	if took > 10*time.Second {
		t.Errorf("took %v, want < 10s", took)
	}
	t.Logf("failed after %v: %v", took.Round(time.Millisecond), err)
}

func TestRemote413IsNotRetried(t *testing.T) {
	t.Parallel()
	reg := testenv.StartRegistry(t)
	px := newProxy(t, reg)
	var uploads int
	var mu sync.Mutex
	px.fail = func(r *http.Request) int {
		if strings.Contains(r.URL.Path, "/blobs/uploads/") && (r.Method == http.MethodPatch || r.Method == http.MethodPut) {
			mu.Lock()
			uploads++
			mu.Unlock()
			return http.StatusRequestEntityTooLarge
		}
		return 0
	}
	ref := mustRef(t, px.Addr()+"/shop/web:1")
	_, err := NewRemote(anonymous, WithJobs(1)).Publish(context.Background(), ref, build(t, nil, appDir(t, "big")))
	var perr *Error
	if !errors.As(err, &perr) || perr.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(err.Error(), "413") {
		t.Fatalf("err = %v, want *Error with status 413 and saying so", err)
	}
	if !strings.Contains(err.Error(), "proxy says") {
		t.Errorf("err = %v, want the registry's own message", err)
	}
	t.Logf("%v", err)
	if uploads != 1 {
		t.Errorf("%d upload attempts, want 1 (413 is final)", uploads)
	}
}

func TestRemote500IsRetriedThenFails(t *testing.T) {
	t.Parallel()
	reg := testenv.StartRegistry(t)
	px := newProxy(t, reg)
	var posts int
	var mu sync.Mutex
	px.fail = func(r *http.Request) int {
		if r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/blobs/uploads/") {
			mu.Lock()
			posts++
			mu.Unlock()
			return http.StatusInternalServerError
		}
		return 0
	}
	ref := mustRef(t, px.Addr()+"/shop/web:1")
	start := time.Now()
	_, err := NewRemote(anonymous, WithJobs(1), WithRetry(3, 20*time.Millisecond)).Publish(context.Background(), ref, build(t, nil, appDir(t, "flaky")))
	var perr *Error
	if !errors.As(err, &perr) || perr.StatusCode != http.StatusInternalServerError || !strings.Contains(err.Error(), "500") {
		t.Fatalf("err = %v, want *Error with status 500", err)
	}
	if posts != 3 {
		t.Errorf("%d upload attempts, want 3", posts)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v", took)
	}
	t.Logf("%d attempts in %v: %v", posts, time.Since(start).Round(time.Millisecond), err)
}

func TestRemoteTimeoutBoundsEverything(t *testing.T) {
	t.Parallel()
	reg := testenv.StartRegistry(t)
	px := newProxy(t, reg)
	px.fail = func(r *http.Request) int {
		return http.StatusServiceUnavailable
	}
	start := time.Now()
	_, err := NewRemote(anonymous, WithRetry(100, 50*time.Millisecond), WithTimeout(500*time.Millisecond)).
		Publish(context.Background(), mustRef(t, px.Addr()+"/shop/web:1"), build(t, nil, appDir(t, "t")))
	if err == nil {
		t.Fatal("no error")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %v despite a 500ms timeout: %v", took, err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestErrorRedactsPassword(t *testing.T) {
	t.Parallel()
	ref := name.MustParseReference("127.0.0.1:5000/a:b")
	err := newError(ref, "checking", fmt.Errorf("echo hunter22 and Authorization: Basic dXNlcjpodW50ZXIyMg=="), secretsFor("user", "hunter22"))
	if strings.Contains(err.Error(), "hunter22") || strings.Contains(err.Error(), "dXNlcjpodW50ZXIyMg==") {
		t.Fatalf("not redacted: %s", err)
	}
}

func TestRecorder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, err := OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	rec := Record(l)
	var p Publisher = rec
	ref := mustRef(t, "slipway.local/shop/web:1")
	if _, err := p.Publish(context.Background(), ref, build(t, nil, appDir(t, "r"))); err != nil {
		t.Fatal(err)
	}
	if calls := rec.Calls(); len(calls) != 1 || calls[0].Ref != ref.String() || calls[0].Err != nil {
		t.Fatalf("calls %+v", calls)
	}
}
