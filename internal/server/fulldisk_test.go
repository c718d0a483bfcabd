//go:build linux

package server

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/proxy"
	"github.com/slipway-dev/slipway/internal/state"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// syncBuffer is a log writer the test reads while serve writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The state dir's file system really fills up in the middle of a deploy:
// the deploy fails and says so, the live release keeps serving, a new job
// is refused while the disk is full, and once space is freed the failure
// is recorded, so no release stays "deploying".
func TestFullDiskMidDeploy(t *testing.T) {
	fs := testenv.SmallFS(t, 64<<20)
	if fs == "" {
		return
	}
	// The process runtime (instances' logs and records, unpacked images)
	// gets a file system of its own: the failed instance's files, deleted
	// when the gate fails, must not free space on the state's.
	if err := os.Mkdir(filepath.Join(fs, "runtime"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", filepath.Join(fs, "runtime"), "tmpfs", 0, "size=128m,mode=0700"); err != nil {
		t.Fatalf("mounting the runtime's tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(filepath.Join(fs, "runtime"), syscall.MNT_DETACH) })
	logs := &syncBuffer{}
	h := serveWith(t, Options{DataDir: fs, HTTPAddr: "127.0.0.1:0", Driver: "process", Log: logs, StopOnExit: true, MinFreeBytes: 2 << 20})
	s := h.s

	rel1, err, evs := h.deploy(pipeline.DeployRequest{Commit: "c1", Apps: []pipeline.AppDeploy{h.app("v1")}})
	if err != nil {
		t.Fatalf("first deploy: %v\n%v", err, evs)
	}
	v2 := h.app("v2")
	// Never healthy: the gate fails a few seconds in, after the disk filled.
	v2.Health = proxy.HealthCheck{Path: "/missing", Interval: 50 * time.Millisecond, Timeout: time.Second, Deadline: 3 * time.Second}

	var free func()
	var fillOnce sync.Once
	fill := func() {
		// Empty the WAL first, so SQLite's next write needs new blocks
		// (it would otherwise reuse the WAL's old ones).
		if _, err := s.State.Exec(context.Background(), "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			t.Errorf("checkpoint: %v", err)
		}
		free = testenv.KeepFull(t, fs)
		t.Cleanup(free)
	}
	_, err = NewClient(fs).Deploy(context.Background(), pipeline.DeployRequest{Project: "shop", Store: "us", Commit: "c2",
		Kind: state.KindBuildDeploy, Apps: []pipeline.AppDeploy{v2}}, func(e pipeline.Event) {
		if strings.HasPrefix(e.Message, "started web at") {
			fillOnce.Do(fill)
		}
	})
	if free == nil {
		t.Fatalf("the deploy never started its instance: %v", err)
	}
	if err == nil {
		t.Fatal("a deploy whose gate failed on a full disk succeeded")
	}
	t.Logf("deploy on a full disk: %v", err)
	if code, body := h.get("us.localhost", "/release"); code != 200 || body != rel1.ID {
		t.Errorf("on a full disk the store answers %d %q, want the live release %s", code, body, rel1.ID)
	}
	rels, err := s.State.Releases(context.Background(), "us", 10)
	if err != nil {
		t.Fatalf("reading releases on a full disk: %v", err)
	}
	var rel2 *state.Release
	for _, r := range rels {
		if r.ID != rel1.ID {
			rel2 = r
		}
	}
	if rel2 == nil {
		t.Fatalf("no record of the second release: %+v", rels)
	}
	pending := s.Deployer.PendingRecords()
	t.Logf("while full: release %s is %s, %d record(s) pending", rel2.ID, rel2.Status, pending)
	if rel2.Status == state.StatusDeploying && pending == 0 {
		t.Fatalf("release %s is left deploying with nothing pending", rel2.ID)
	}
	if pending == 0 || rel2.Status != state.StatusDeploying {
		t.Errorf("release %s is %s with %d pending on a full disk: the test did not keep the disk full", rel2.ID, rel2.Status, pending)
	}

	// A new job is refused up front while the disk is full, recording nothing.
	_, err, _ = h.deploy(pipeline.DeployRequest{Commit: "c3", Apps: []pipeline.AppDeploy{v2}})
	// (The audit trail, written first, may be what refuses it.)
	if err == nil || !(strings.Contains(err.Error(), "--min-free-space") || strings.Contains(err.Error(), "disk is full")) {
		t.Errorf("deploy on a full disk: %v, want a refusal naming the full disk", err)
	}
	if again, _ := s.State.Releases(context.Background(), "us", 10); len(again) != len(rels) {
		t.Errorf("a refused deploy recorded a release: %d releases, had %d", len(again), len(rels))
	}

	free()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r, err := s.State.Release(context.Background(), rel2.ID)
		if err == nil && r.Status == state.StatusFailed && s.Deployer.PendingRecords() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after freeing space: release %+v (%v), %d pending; log:\n%s", r, err, s.Deployer.PendingRecords(), logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "recorded late") {
		t.Errorf("serve did not log the late record:\n%s", logs.String())
	}
	if cur, err := s.State.Current(context.Background(), "us"); err != nil || cur.ID != rel1.ID {
		t.Errorf("live release after the failure: %+v %v, want %s", cur, err, rel1.ID)
	}
	// With space again, deploys run.
	// (Wait: the failed deploy's lock release, retried, lands within 200 ms.)
	if _, err, evs := h.deploy(pipeline.DeployRequest{Commit: "c4", Apps: []pipeline.AppDeploy{h.app("v4")}, Wait: true}); err != nil {
		t.Errorf("deploy after freeing space: %v\n%v", err, evs)
	}
}
