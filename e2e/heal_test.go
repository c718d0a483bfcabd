//go:build integration

package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// appProc returns the owned process whose environment says it is an instance
// of app in release rel.
func (p *project) appProc(t *testing.T, app, rel string) (hostProc, bool) {
	t.Helper()
	for _, hp := range p.ownedProcs() {
		environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", hp.PID))
		if err != nil || hp.Release != rel {
			continue
		}
		if strings.Contains(string(environ), "\x00SLIPWAY_APP="+app+"\x00") {
			return hp, true
		}
	}
	return hostProc{}, false
}

// gone waits until pid is no longer a live process (reaped or a zombie).
func gone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && strings.HasPrefix(strings.TrimSpace(string(stat[i+1:])), "Z") {
			return
		}
	}
	t.Fatalf("pid %d still alive 10s after SIGKILL", pid)
}

// answers reports whether the store's storefront answers 200 through the router.
func answers(routerAddr, store string) bool {
	_, port, _ := net.SplitHostPort(routerAddr)
	resp, err := httpClient.Get("http://" + store + ".localhost:" + port + "/api/info")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// untilAnswers polls the store every 20ms for up to d and returns how long it
// took to answer 200, or false.
func untilAnswers(routerAddr, store string, d time.Duration) (time.Duration, bool) {
	t0 := time.Now()
	for time.Since(t0) < d {
		if answers(routerAddr, store) {
			return time.Since(t0), true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(t0), false
}

// After kill -9 of serve and a start of a new one, kill -9 of an instance is
// healed within 2 s: the new serve restarts it with the spec (env and secrets
// included) that the dead serve recorded, sealed, in the state.
func TestHealAfterServeRestart(t *testing.T) {
	t.Parallel()
	p, addr, serve, v1 := liveV1(t)
	serve.kill9(t)
	serve = p.serve(addr)
	if !answers(addr, "us") {
		t.Fatalf("us does not answer after serve restarted")
	}
	// Let the new serve's supervisor take its first look (it ticks every second).
	time.Sleep(1500 * time.Millisecond)

	const app = "storefront-unified-nextjs"
	old, ok := p.appProc(t, app, v1.ID)
	if !ok {
		t.Fatalf("no %s instance of %s runs: %s", app, v1.ID, describe(p.ownedProcs()))
	}
	t0 := time.Now()
	if err := syscall.Kill(old.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	gone(t, old.PID)
	took, ok := untilAnswers(addr, "us", 10*time.Second)
	took = time.Since(t0)
	if !ok {
		t.Fatalf("us did not answer again within 10s of kill -9 of its instance\nserve stderr:\n%s", serve.stderr)
	}
	t.Logf("healed %s after kill -9 in %s", app, took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("healing took %s, want at most 2s\nserve stderr:\n%s", took.Round(time.Millisecond), serve.stderr)
	}
	now, ok := p.appProc(t, app, v1.ID)
	if !ok || now.PID == old.PID {
		t.Errorf("no new %s instance of %s: %s", app, v1.ID, describe(p.ownedProcs()))
	}
	if got := info(t, addr, "us"); got.Release != v1.ID {
		t.Errorf("after healing us serves %q, want %s", got.Release, v1.ID)
	}
	p.expectOnlyLive(v1.ID, usApps)

	// And again, now that the restarted instance's spec was recorded in turn:
	// a second crash (after its backoff) is healed as well.
	time.Sleep(2500 * time.Millisecond)
	syscall.Kill(now.PID, syscall.SIGKILL)
	gone(t, now.PID)
	if took, ok := untilAnswers(addr, "us", 10*time.Second); !ok {
		t.Errorf("a second crash was not healed within %s", took)
	}
	p.stopServe(serve)
}

// A reboot takes serve and every instance away: the next serve brings the
// store back from its live release, with nothing to deploy.
func TestServeBringsStoresBackAfterReboot(t *testing.T) {
	t.Parallel()
	p, addr, serve, v1 := liveV1(t)
	serve.kill9(t)
	for _, hp := range p.ownedProcs() {
		syscall.Kill(-hp.PGID, syscall.SIGKILL)
		syscall.Kill(hp.PID, syscall.SIGKILL)
		gone(t, hp.PID)
	}
	if answers(addr, "us") {
		t.Fatalf("us still answers with serve and its instances gone")
	}
	t0 := time.Now()
	serve = p.serve(addr)
	if _, ok := untilAnswers(addr, "us", 20*time.Second); !ok {
		t.Fatalf("us did not come back within 20s of serve starting\nserve stderr:\n%s", serve.stderr)
	}
	t.Logf("us answers %s after serve started on a 'rebooted' host", time.Since(t0).Round(time.Millisecond))
	if got := info(t, addr, "us"); got.Release != v1.ID {
		t.Errorf("after the reboot us serves %q, want %s", got.Release, v1.ID)
	}
	if cur := p.releaseOf("us", v1.Commit); cur.ID != v1.ID || cur.Status != "live" {
		t.Errorf("release %s is %q, want %s live (bringing it back is no new release)", cur.ID, cur.Status, v1.ID)
	}
	time.Sleep(500 * time.Millisecond)
	p.expectOnlyLive(v1.ID, usApps)
	p.stopServe(serve)
}
