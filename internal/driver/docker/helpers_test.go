package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/moby/client"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/driver/testapp"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// newDriver connects to the test engine (skipping without one) with the
// network mode testenv found to work here, and removes at the end of the
// test every container and volume labelled with project, and the images
// whose digests the test registers with env.image.
func newDriver(t *testing.T, opts ...Option) *testEnv {
	t.Helper()
	if testenv.RequireDocker(t) == "" {
		return nil
	}
	ctx := context.Background()
	project := "dockertest-" + randHex(4)
	opts = append([]Option{
		WithHost(testenv.DockerHost()),
		WithNetworkMode(testenv.DockerNetwork()),
		WithImageRepo("slipway.local/" + project),
	}, opts...)
	d, err := New(ctx, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e := &testEnv{t: t, d: d, project: project}
	t.Cleanup(func() {
		e.cleanup()
		d.Close()
	})
	return e
}

type testEnv struct {
	t       *testing.T
	d       *Driver
	project string
	reg     *testenv.Registry
	digests []string
}

// labels are the managed labels of store/app at release for this test.
func (e *testEnv) labels(release string) map[string]string {
	return driver.ManagedLabels(e.project, "us", "web", release, "web")
}

// push builds the test app with a marker (so the digest is the test's own)
// and pushes it to the test's registry; it returns the digest reference.
func (e *testEnv) push(repo, marker string, base v1.Image) driver.Image {
	e.t.Helper()
	img := testapp.Image(e.t, testapp.Options{Base: base, Env: map[string]string{"TESTAPP_MARKER": marker + "-" + e.project}})
	return e.pushImage(repo, img)
}

func (e *testEnv) pushImage(repo string, img v1.Image) driver.Image {
	e.t.Helper()
	if e.reg == nil {
		e.reg = testenv.StartRegistry(e.t)
	}
	tag, err := name.NewTag(e.reg.Repo(repo) + ":latest")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		e.t.Fatalf("pushing %s: %v", tag, err)
	}
	dg, err := img.Digest()
	if err != nil {
		e.t.Fatal(err)
	}
	e.digests = append(e.digests, dg.String())
	return driver.Image{Ref: e.reg.Repo(repo) + "@" + dg.String()}
}

// cleanup removes what the test created; it reports, but does not fail on,
// what it could not remove.
func (e *testEnv) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cli := e.d.Client()
	f := make(client.Filters).Add("label", driver.LabelProject+"="+e.project)
	if cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f}); err == nil {
		for _, c := range cs.Items {
			if _, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
				e.t.Logf("cleanup: removing container %s: %v", c.ID, err)
			}
		}
	}
	if vs, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: f}); err == nil {
		for _, v := range vs.Items {
			if _, err := cli.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true}); err != nil {
				e.t.Logf("cleanup: removing volume %s: %v", v.Name, err)
			}
		}
	}
	e.removeImages(ctx, e.digests...)
}

// removeImages removes the driver's tag and every registry@digest
// reference of these digests.
func (e *testEnv) removeImages(ctx context.Context, digests ...string) {
	cli := e.d.Client()
	imgs, err := cli.ImageList(ctx, client.ImageListOptions{})
	if err != nil {
		return
	}
	for _, dg := range digests {
		refs := []string{OwnedTag(e.d.opts.imageRepo, dg)}
		for _, img := range imgs.Items {
			for _, rd := range img.RepoDigests {
				if strings.HasSuffix(rd, "@"+dg) {
					refs = append(refs, rd)
				}
			}
		}
		for _, ref := range refs {
			if _, err := cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true}); err != nil && !isNotFound(err) {
				e.t.Logf("cleanup: removing image %s: %v", ref, err)
			}
		}
	}
}

// spec is a web instance of the test app.
func (e *testEnv) spec(img driver.Image, release string) driver.Spec {
	s := driver.Spec{
		Image:       img,
		Name:        fmt.Sprintf("%s-%s-%s", e.project, release, randHex(2)),
		Env:         map[string]string{"SECRET_TOKEN": "s3cr3t value"},
		Port:        testapp.DefaultPort,
		Labels:      e.labels(release),
		StopTimeout: 5 * time.Second,
	}
	if e.d.opts.netMode == NetworkHost {
		// Host networking: listen on loopback only.
		s.Env["HOST"] = "127.0.0.1"
	}
	return s
}

func (e *testEnv) start(spec driver.Spec) driver.Instance {
	e.t.Helper()
	inst, err := e.d.Start(context.Background(), spec)
	if err != nil {
		e.t.Fatalf("Start: %v", err)
	}
	if inst.State != "running" {
		e.t.Fatalf("Start: state %q (exit %d), want running", inst.State, inst.ExitCode)
	}
	return inst
}

// get fetches http://addr/path, retrying until the app answers (it may
// still be starting) or 10 s pass.
func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.Get("http://" + addr + path)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode, strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET http://%s%s: %v", addr, path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
