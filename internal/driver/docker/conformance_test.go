package docker

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/moby/client"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/driver/drivertest"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// testLabel marks what a test run's drivers create (WithLabels), so that
// the run removes exactly that at the end.
const testLabel = "dev.slipway.test"

// TestConformance runs the driver conformance suite with images pushed to
// a real registry on loopback, which the engine pulls by digest.
func TestConformance(t *testing.T) {
	if testenv.RequireDocker(t) == "" {
		return
	}
	reg := testenv.StartRegistry(t)
	run := "conf-" + randHex(4)
	var n atomic.Int32

	open := func(t *testing.T, repo string) *Driver {
		t.Helper()
		d, err := New(context.Background(),
			WithHost(testenv.DockerHost()),
			WithNetworkMode(testenv.DockerNetwork()),
			WithImageRepo(repo),
			WithLabels(map[string]string{testLabel: run}),
			// The suite's Wait contract (a crash reports its exit code) races
			// the engine's own restart of the container; restarts are covered
			// by TestRestartKeepsAddr.
			WithRestartPolicy("no"),
			// As serve runs it: output kept by the driver, redacted.
			WithLogDir(t.TempDir()),
		)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	t.Cleanup(func() { removeLabelled(t, run) })

	drivertest.Run(t, drivertest.Harness{
		NewDriver: func(t *testing.T) driver.Driver {
			// Each case's driver owns its own image repository, so its
			// Prune sees only what it fetched; at the end (after the case
			// stopped its instances) it prunes everything it fetched.
			d := open(t, fmt.Sprintf("slipway.local/%s-%d", run, n.Add(1)))
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if _, err := d.Prune(ctx, nil); err != nil {
					t.Logf("cleanup: Prune: %v", err)
				}
			})
			return d
		},
		Publish: func(t *testing.T, img v1.Image) driver.Image {
			// A label unique to this run gives the images digests of
			// their own: tests of other packages running the same test
			// app on this engine at the same time then never hold (or
			// prune) these images.
			img, err := mutateLabel(img, testLabel, run)
			if err != nil {
				t.Fatal(err)
			}
			tag, err := name.NewTag(reg.Repo("conformance/app") + ":" + randHex(4))
			if err != nil {
				t.Fatal(err)
			}
			if err := remote.Write(tag, img); err != nil {
				t.Fatalf("pushing %s: %v", tag, err)
			}
			dg, err := img.Digest()
			if err != nil {
				t.Fatal(err)
			}
			return driver.Image{Ref: reg.Repo("conformance/app") + "@" + dg.String()}
		},
		Reopen: func(t *testing.T, d driver.Driver) driver.Driver {
			return open(t, d.(*Driver).opts.imageRepo)
		},
	})
}

// mutateLabel returns img with one more config label.
func mutateLabel(img v1.Image, k, v string) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg := cf.Config
	labels := map[string]string{k: v}
	for lk, lv := range cfg.Labels {
		labels[lk] = lv
	}
	cfg.Labels = labels
	return mutate.Config(img, cfg)
}

// removeLabelled removes the containers and volumes labelled testLabel=run.
func removeLabelled(t *testing.T, run string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cli, err := client.New(client.WithHost(testenv.DockerHost()))
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer cli.Close()
	f := make(client.Filters).Add("label", testLabel+"="+run)
	if cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f}); err == nil {
		for _, c := range cs.Items {
			t.Logf("cleanup: container %s (%v) was left behind", c.ID, c.Names)
			cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		}
	}
	if vs, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: f}); err == nil {
		for _, v := range vs.Items {
			if _, err := cli.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true}); err != nil {
				t.Logf("cleanup: removing volume %s: %v", v.Name, err)
			}
		}
	}
}
