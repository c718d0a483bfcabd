package pipeline

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/state"
)

// hookFails is a driver whose hooks exit 3; nothing else is ever reached.
type hookFails struct{ driver.Driver }

func (hookFails) Capabilities() driver.Capabilities {
	return driver.Capabilities{Name: "fake", Isolation: "none"}
}
func (hookFails) Run(context.Context, driver.RunSpec) (int, error) { return 3, nil }
func (hookFails) List(context.Context, map[string]string) ([]driver.Instance, error) {
	return nil, nil
}

func diskDeployer(t *testing.T) *Deployer {
	t.Helper()
	dir := t.TempDir()
	db, err := state.Open(context.Background(), filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &Deployer{Driver: hookFails{}, State: db, DataDir: dir}
}

func failingInstall() DeployRequest {
	return DeployRequest{Project: "p", Store: "us", Kind: state.KindBuildDeploy, Commit: "c1",
		Apps:  []AppDeploy{{App: "web", Ref: "slipway.local/p/web:c1", Digest: "sha256:" + strings.Repeat("a", 64)}},
		Hooks: Hooks{Install: Hook{Command: "migrate"}}}
}

// Below the free-space threshold a job is refused before it records or runs anything.
func TestDeployRefusedBelowFreeSpace(t *testing.T) {
	d := diskDeployer(t)
	d.MinFree = 1 << 62 // more than any disk has
	_, err := d.Deploy(context.Background(), failingInstall(), nil)
	if !errors.Is(err, ErrLowDisk) || !strings.Contains(err.Error(), "--min-free-space") {
		t.Fatalf("deploy below the threshold: %v, want ErrLowDisk naming --min-free-space", err)
	}
	if rs, _ := d.State.Releases(context.Background(), "us", 0); len(rs) != 0 {
		t.Fatalf("a refused job recorded releases: %+v", rs)
	}
	d.MinFree = -1 // off: the job runs (and fails in its hook)
	if _, err := d.Deploy(context.Background(), failingInstall(), nil); errors.Is(err, ErrLowDisk) || !errors.Is(err, ErrDeployFailed) {
		t.Fatalf("with the check off: %v", err)
	}
}

// A failure that cannot be recorded at once (the disk is full) is kept and
// recorded by the supervisor's retry: the release does not stay "deploying".
func TestFailureRecordedLate(t *testing.T) {
	d := diskDeployer(t)
	d.MinFree = -1
	full := true
	d.failRelease = func(ctx context.Context, r *state.Release) error {
		if full {
			return errors.New("database or disk is full")
		}
		return d.State.Fail(ctx, r)
	}
	rel, err := d.Deploy(context.Background(), failingInstall(), nil)
	if err == nil || !strings.Contains(err.Error(), "retried until it is recorded") {
		t.Fatalf("deploy: %v, want the failure plus a note that its record is kept", err)
	}
	stored, _ := d.State.Release(context.Background(), rel.ID)
	if stored.Status != state.StatusDeploying || d.PendingRecords() != 1 {
		t.Fatalf("while the disk is full: stored %s, %d pending; want deploying and 1", stored.Status, d.PendingRecords())
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	d.retryPending(context.Background(), log)
	if d.PendingRecords() != 1 {
		t.Fatalf("a retry on a full disk dropped the record")
	}
	full = false
	d.retryPending(context.Background(), log)
	stored, _ = d.State.Release(context.Background(), rel.ID)
	if stored.Status != state.StatusFailed || stored.Stage != StageInstall || d.PendingRecords() != 0 {
		t.Fatalf("after space came back: %s at %q, %d pending; want failed at install, none", stored.Status, stored.Stage, d.PendingRecords())
	}
}

// A late failure record is dropped, not retried forever, once the release
// moved on meanwhile (a restarted serve recovered it as interrupted): the
// lifecycle refuses failed after interrupted.
func TestLateRecordDroppedOnceMovedOn(t *testing.T) {
	d := diskDeployer(t)
	d.MinFree = -1
	d.failRelease = func(context.Context, *state.Release) error { return errors.New("database or disk is full") }
	rel, err := d.Deploy(context.Background(), failingInstall(), nil)
	if err == nil || d.PendingRecords() != 1 {
		t.Fatalf("deploy: %v, %d pending", err, d.PendingRecords())
	}
	stored, _ := d.State.Release(context.Background(), rel.ID)
	if err := d.State.Interrupt(context.Background(), stored); err != nil {
		t.Fatal(err)
	}
	d.failRelease = nil
	d.retryPending(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	stored, _ = d.State.Release(context.Background(), rel.ID)
	if stored.Status != state.StatusInterrupted || d.PendingRecords() != 0 {
		t.Fatalf("after the retry: %s, %d pending; want interrupted and none", stored.Status, d.PendingRecords())
	}
}
