//go:build integration

package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// usApps is how many instances a release of store us runs (the Next.js
// storefront and the middleware, one each).
const usApps = 2

// liveV1 starts serve on a fresh copy of the example and deploys store us once.
func liveV1(t *testing.T) (p *project, addr string, serve *proc, v1 *release) {
	t.Helper()
	p = newProject(t)
	addr = freeAddr(t)
	serve = p.serve(addr)
	p.deploy("us")
	v1 = p.releaseOf("us", p.git("rev-parse", "HEAD"))
	if v1.Status != "live" {
		t.Fatalf("first deploy: release %s is %s, want live", v1.ID, v1.Status)
	}
	if got := info(t, addr, "us"); got.Release != v1.ID {
		t.Fatalf("us serves release %q, want %s", got.Release, v1.ID)
	}
	p.expectOnlyLive(v1.ID, usApps)
	return p, addr, serve, v1
}

// stageRunning matches the deploy CLI's line for a hook stage starting.
func stageRunning(stage string) *regexp.Regexp {
	return regexp.MustCompile(`\[us\] ` + regexp.QuoteMeta(stage) + `: running "sleep 30"`)
}

// killServeDuring deploys a new commit of us with a `sleep 30` hook (env is
// SLIPWAY_HOOK_…=sleep 30), waits until the hook's sleep runs, kills serve
// with SIGKILL, checks the deploy CLI fails cleanly, and returns the commit.
func killServeDuring(t *testing.T, p *project, serve *proc, stage, hookEnv string) string {
	t.Helper()
	commit := p.change("crash during " + stage)
	dep := p.start([]string{hookEnv + "=sleep 30"}, "deploy", "-C", p.dir, "--store-id", "us")
	dep.waitOutput(t, true, stageRunning(stage), 2*time.Minute)
	hook, ok := p.waitProc("sleep 30", 20*time.Second)
	if !ok {
		t.Fatalf("the %s hook's sleep never ran\ndeploy stderr:\n%s", stage, dep.stderr)
	}
	t.Logf("%s hook running: %s; kill -9 serve (pid %d)", stage, hook, serve.cmd.Process.Pid)
	serve.kill9(t)

	// The CLI only streamed the deploy: it fails, saying the stream broke.
	code := dep.wait(t, 30*time.Second)
	if code != 1 {
		t.Errorf("deploy CLI exited %d after serve died, want 1\nstderr:\n%s", code, dep.stderr)
	}
	errOut := dep.stderr.String()
	if !strings.Contains(errOut, "us: ") || !strings.Contains(errOut, "deploy stream") {
		t.Errorf("deploy CLI stderr does not say that the deploy of us lost its stream:\n%s", errOut)
	}
	if !strings.Contains(dep.stdout.String(), "failed") {
		t.Errorf("deploy CLI summary does not show the failure:\n%s", dep.stdout)
	}
	return commit
}

// kill -9 of serve while the install hook runs: after a restart the old release
// still serves, the new one is interrupted, the hook is gone, the lock is free.
func TestCrashDuringInstall(t *testing.T) {
	t.Parallel()
	p, addr, serve, v1 := liveV1(t)
	commit := killServeDuring(t, p, serve, "install", "SLIPWAY_HOOK_INSTALL")

	// Instances keep serving while serve is down; the hook runs on, its
	// parent gone, until the next serve recovers it.
	for _, hp := range p.ownedProcs() {
		if strings.Contains(hp.Cmdline, "sleep 30") {
			t.Logf("while serve is down: %s", hp)
		}
	}

	serve = p.serve(addr)
	if got := info(t, addr, "us"); got.Release != v1.ID {
		t.Errorf("after restart us serves release %q, want the old %s", got.Release, v1.ID)
	}
	r := p.releaseOf("us", commit)
	if r.Status != "interrupted" {
		t.Errorf("release %s of the interrupted deploy is %q (%s), want interrupted", r.ID, r.Status, r.Error)
	}
	if cur := p.releaseOf("us", v1.Commit); cur.ID != v1.ID || cur.Status != "live" {
		t.Errorf("release %s is %q, want %s live", cur.ID, cur.Status, v1.ID)
	}
	p.expectOnlyLive(v1.ID, usApps)

	// The lock of the dead serve is reclaimed at once: no --wait needed.
	t0 := time.Now()
	p.deploy("us")
	next := p.releaseOf("us", commit)
	t.Logf("redeploy after recovery took %s", time.Since(t0).Round(time.Millisecond))
	if next.ID == r.ID || next.Status != "live" {
		t.Errorf("redeploy of %s: release %s is %q, want a new live release", commit, next.ID, next.Status)
	}
	if got := info(t, addr, "us"); got.Release != next.ID {
		t.Errorf("after the redeploy us serves %q, want %s", got.Release, next.ID)
	}
	p.expectOnlyLive(next.ID, usApps)
	p.stopServe(serve)
}

// kill -9 of serve after the cutover (while post-deploy runs): after a restart
// the new release serves and is recorded live, with a note; the old instances
// are stopped; nothing else runs.
func TestCrashAfterCutover(t *testing.T) {
	t.Parallel()
	p, addr, serve, v1 := liveV1(t)
	commit := killServeDuring(t, p, serve, "post-deploy", "SLIPWAY_HOOK_AFTER_DEPLOY")

	serve = p.serve(addr)
	r := p.releaseOf("us", commit)
	if got := info(t, addr, "us"); got.Release != r.ID {
		t.Errorf("after restart us serves release %q, want the new %s", got.Release, r.ID)
	}
	if r.Status != "live" {
		t.Errorf("release %s is %q, want live: its cutover happened", r.ID, r.Status)
	}
	if !strings.Contains(r.Error, "interrupted") || r.FinishedAt == nil {
		t.Errorf("release %s: stage %q, error %q, finished %v; want a note that it was interrupted after the cutover, and a finish time",
			r.ID, r.Stage, r.Error, r.FinishedAt)
	}
	if old := p.releaseOf("us", v1.Commit); old.Status != "superseded" {
		t.Errorf("old release %s is %q, want superseded", old.ID, old.Status)
	}
	p.expectOnlyLive(r.ID, usApps)

	// The lock is free again.
	p.deploy("us")
	p.stopServe(serve)
}

// kill -9 of the deploy CLI (not serve) during install: serve runs the deploy
// to the end, the new release goes live and the lock is released.
func TestDeployCLIKilled(t *testing.T) {
	t.Parallel()
	p, addr, serve, _ := liveV1(t)
	commit := p.change("deploy CLI killed")
	dep := p.start([]string{"SLIPWAY_HOOK_INSTALL=sleep 3"}, "deploy", "-C", p.dir, "--store-id", "us")
	dep.waitOutput(t, true, regexp.MustCompile(`\[us\] install: running "sleep 3"`), 2*time.Minute)
	if _, ok := p.waitProc("sleep 3", 20*time.Second); !ok {
		t.Fatalf("the install hook never ran\ndeploy stderr:\n%s", dep.stderr)
	}
	dep.kill9(t)

	// The deploy finishes in serve: poll its record (at most 60 s).
	var r *release
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		r = p.releaseOf("us", commit)
		if r.FinishedAt != nil || time.Now().After(deadline) {
			break
		}
	}
	if r.Status != "live" || r.FinishedAt == nil || r.Error != "" {
		t.Fatalf("release %s: %q, finished %v, error %q; want it deployed to the end after its CLI died", r.ID, r.Status, r.FinishedAt, r.Error)
	}
	if st, _, _ := r.stage("install"); st != "ok" {
		t.Errorf("release %s: install stage %q, want ok", r.ID, st)
	}
	if got := info(t, addr, "us"); got.Release != r.ID {
		t.Errorf("us serves release %q, want %s", got.Release, r.ID)
	}
	// The lock goes right after the record is finished; a deploy without
	// --wait must get it (allowing the moment between the two).
	var out, errOut string
	code := -1
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, errOut, code = p.run(2*time.Minute, nil, "deploy", "-C", p.dir, "--store-id", "us", "--deploy-only")
		if code == 0 || !strings.Contains(errOut, "is being deployed") || time.Now().After(deadline) {
			break
		}
	}
	if code != 0 {
		t.Fatalf("deploy after the CLI was killed: exit %d (the lock was not released?)\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	rs, _ := p.releases("us")
	p.expectOnlyLive(rs[0].ID, usApps)
	p.stopServe(serve)
}
