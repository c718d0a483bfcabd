package pipeline

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/slipway-dev/slipway/internal/driver"
)

// pruneRecorder is a Pruner that records each keep list it was given.
type pruneRecorder struct {
	mu    sync.Mutex
	keeps [][]string
}

func (p *pruneRecorder) Prune(_ context.Context, keep []string) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keeps = append(p.keeps, slices.Clone(keep))
	return []string{"sha256:old"}, nil
}

func (p *pruneRecorder) calls() [][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.keeps)
}

type pruningFake struct {
	*fakeDriver
	pruneRecorder
}

type staticUnpacker struct{ pruneRecorder }

func (*staticUnpacker) Unpack(context.Context, driver.Image) (driver.Unpacked, error) {
	return driver.Unpacked{}, context.Canceled
}

// Static sites unpacked apart from a container runtime's images are pruned
// with the runtime's keep list: after a deploy, and by Prune.
func TestStaticUnpacksPrunedWithReleases(t *testing.T) {
	d, fd := fakeDeployer(t)
	rt := &pruningFake{fakeDriver: fd}
	un := &staticUnpacker{}
	d.Driver, d.Unpacker = rt, un
	req := fakeRequest("c1")
	if _, err := d.Deploy(context.Background(), req, nil); err != nil {
		t.Fatal(err)
	}
	digest := req.Apps[0].Digest
	got := un.calls()
	if len(got) != 1 || !slices.Contains(got[0], digest) || !slices.Equal(got[0], rt.calls()[0]) {
		t.Fatalf("static prune after the deploy: %v (runtime's: %v), want the live digest %s kept", got, rt.calls(), digest)
	}
	removed, err := d.Prune(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(un.calls()) != 2 || len(removed) != 2 {
		t.Errorf("Prune: static pruned %d times, removed %v", len(un.calls()), removed)
	}
	// The process driver unpacks its own sites; its Prune covers them once.
	d.Unpacker = nil
	if _, err := d.Prune(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if len(un.calls()) != 2 {
		t.Error("an unset Unpacker was pruned")
	}
}
