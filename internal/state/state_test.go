package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

func open(t *testing.T) *DB {
	t.Helper()
	d, err := Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if err := d.UseSealer(context.Background(), testBox(t)); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestReleasesLifecycle(t *testing.T) {
	ctx := context.Background()
	d := open(t)
	var rs []*Release
	for i := 0; i < 3; i++ {
		r := &Release{Project: "p", Store: "us", Commit: "c" + string(rune('0'+i)), Kind: KindBuildDeploy,
			Images: map[string]Image{"web": {Ref: "r", Digest: "sha256:x"}}}
		if err := d.CreateRelease(ctx, r); err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	if rs[2].Number != 3 || rs[2].ID != "us-v3" {
		t.Fatalf("numbering: %+v", rs[2])
	}
	if _, err := d.Current(ctx, "us"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no live release yet: %v", err)
	}
	rs[0].Stages = []Stage{{Name: "install", Status: "ok", ExitCode: 0}}
	if err := d.Promote(ctx, rs[0]); err != nil {
		t.Fatal(err)
	}
	if err := d.Promote(ctx, rs[1]); err != nil {
		t.Fatal(err)
	}
	cur, err := d.Current(ctx, "us")
	if err != nil || cur.ID != "us-v2" {
		t.Fatalf("current: %v %v", cur, err)
	}
	first, _ := d.Release(ctx, "us-v1")
	if first.Status != StatusSuperseded || len(first.Stages) != 1 || first.Images["web"].Digest != "sha256:x" {
		t.Errorf("v1 after promotion of v2: %+v", first)
	}
	un, _ := d.Unfinished(ctx)
	if len(un) != 1 || un[0].ID != "us-v3" {
		t.Errorf("unfinished: %v", un)
	}
	all, _ := d.Releases(ctx, "us", 2)
	if len(all) != 2 || all[0].ID != "us-v3" {
		t.Errorf("releases: %v", all)
	}
}

func TestLockExcludesAndReclaims(t *testing.T) {
	ctx := context.Background()
	d := open(t)
	l, err := d.Acquire(ctx, "us", LockOptions{Commit: "abc"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Acquire(ctx, "us", LockOptions{})
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) || le.Holder.Commit != "abc" || !strings.Contains(err.Error(), "pid") {
		t.Fatalf("second acquire: %v", err)
	}
	if _, err := d.Acquire(ctx, "eu", LockOptions{}); err != nil {
		t.Fatalf("another store is independent: %v", err)
	}
	// --wait gets it once released.
	go func() { time.Sleep(300 * time.Millisecond); l.Release() }()
	start := time.Now()
	l2, err := d.Acquire(ctx, "us", LockOptions{Wait: true})
	if err != nil || time.Since(start) < 250*time.Millisecond {
		t.Fatalf("wait: %v after %s", err, time.Since(start))
	}
	l2.Release()

	// A lock held by a dead process on this host is reclaimed at once.
	cmd := exec.Command("true")
	cmd.Run()
	deadPID := cmd.Process.Pid
	host, _ := os.Hostname()
	if _, err := d.db.Exec(`INSERT INTO locks (store, token, host, pid, since, expires) VALUES ('dead', 't', ?, ?, 0, ?)`, host, deadPID, time.Now().Add(time.Hour).UnixNano()); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Acquire(ctx, "dead", LockOptions{}); err != nil {
		t.Errorf("a dead holder's lock must be reclaimed: %v", err)
	}
	// A lock whose lease expired is reclaimed even from another host.
	d.db.Exec(`INSERT INTO locks (store, token, host, pid, since, expires) VALUES ('old', 't', 'elsewhere', 1, 0, ?)`, time.Now().Add(-time.Second).UnixNano())
	if _, err := d.Acquire(ctx, "old", LockOptions{}); err != nil {
		t.Errorf("expired lease not reclaimed: %v", err)
	}
	d.db.Exec(`INSERT INTO locks (store, token, host, pid, since, expires) VALUES ('remote', 't', 'elsewhere', 1, 0, ?)`, time.Now().Add(time.Hour).UnixNano())
	if _, err := d.Acquire(ctx, "remote", LockOptions{}); !errors.Is(err, ErrLocked) {
		t.Errorf("a live remote holder must keep its lock: %v", err)
	}
}

func TestEnv(t *testing.T) {
	ctx := context.Background()
	d := open(t)
	v := "1"
	d.SetEnv(ctx, "us", map[string]*string{"A": &v, "B": &v})
	d.SetEnv(ctx, "us", map[string]*string{"B": nil})
	env, _ := d.Env(ctx, "us")
	if len(env) != 1 || env["A"] != "1" {
		t.Errorf("env: %v", env)
	}
}

func TestKeepDigests(t *testing.T) {
	ctx := context.Background()
	d := open(t)
	for i := 1; i <= 7; i++ {
		r := &Release{Project: "p", Store: "us", Kind: KindBuildDeploy, Images: map[string]Image{"web": {Digest: fmt.Sprintf("sha256:%d", i)}}}
		d.CreateRelease(ctx, r)
		if i < 7 {
			d.Promote(ctx, r)
		}
	}
	failed := &Release{Project: "p", Store: "eu", Kind: KindBuildDeploy, Images: map[string]Image{"web": {Digest: "sha256:failed"}}}
	d.CreateRelease(ctx, failed)
	if err := d.Fail(ctx, failed); err != nil {
		t.Fatal(err)
	}
	keep, err := d.KeepDigests(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(keep)
	// Releases 4..6 served most recently; 7 is still being deployed; the failed one is not kept.
	if got := strings.Join(keep, ","); got != "sha256:4,sha256:5,sha256:6,sha256:7" {
		t.Errorf("keep = %s", got)
	}
}
