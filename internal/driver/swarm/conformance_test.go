//go:build integration

package swarm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/driver/drivertest"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// testLabel marks what a test run's drivers create (WithLabels), so that
// the run removes exactly that at the end.
const testLabel = "dev.slipway.test"

// TestConformance runs the driver conformance suite on a single-node swarm
// (testenv.RequireSwarm), with images pushed to a real registry on loopback
// that the node pulls by digest.
func TestConformance(t *testing.T) {
	sw := testenv.RequireSwarm(t, map[string]string{"region": "conformance"})
	if sw == nil {
		return
	}
	reg := testenv.StartRegistry(t)
	run := "conf-" + randHex(4)
	t.Cleanup(func() { testenv.SwarmCleanup(t, testLabel, run) })
	open := func(t *testing.T) driver.Driver {
		t.Helper()
		d, err := New(context.Background(), WithHost(testenv.DockerHost()), WithRegion("conformance"),
			WithLabels(map[string]string{testLabel: run}))
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	var shell struct {
		once sync.Once
		base v1.Image
	}
	drivertest.Run(t, drivertest.Harness{
		NewDriver: open,
		Publish: func(t *testing.T, img v1.Image) driver.Image {
			// Tasks load their env through /bin/sh: put the suite's app on busybox.
			shell.once.Do(func() { shell.base = testenv.BusyboxImage(t) })
			if shell.base == nil {
				t.Fatal("no busybox image")
			}
			img = onBase(t, shell.base, img)
			return push(t, reg, img)
		},
		Reopen: func(t *testing.T, _ driver.Driver) driver.Driver { return open(t) },
	})
}

// onBase returns img's layers and config on top of base's layers.
func onBase(t testing.TB, base, img v1.Image) v1.Image {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out, err := mutate.AppendLayers(base, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	if !hasPath(cfg.Env) {
		cfg.Env = append(cfg.Env, "PATH=/usr/local/bin:/usr/bin:/bin")
	}
	out, err = mutate.Config(out, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func hasPath(env []string) bool {
	for _, e := range env {
		if len(e) > 5 && e[:5] == "PATH=" {
			return true
		}
	}
	return false
}

// push pushes img to reg and returns its digest reference.
func push(t testing.TB, reg *testenv.Registry, img v1.Image) driver.Image {
	t.Helper()
	tag, err := name.NewTag(reg.Repo("swarm/app") + ":" + randHex(4))
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
	return driver.Image{Ref: reg.Repo("swarm/app") + "@" + dg.String()}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
