package proxy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func activeSite(r *Router, name string) *staticSite {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.services[name].active.Load().static
}

// The replaced release's directory is closed once its requests finished,
// not left to the garbage collector.
func TestStaticSiteClosedAfterDrain(t *testing.T) {
	r, front := newTestRouter(t)
	deployStatic(t, r, "us/site", []string{"site.localhost"}, StaticSite{Dir: writeSite(t, t.TempDir(), "v1")})
	old := activeSite(r, "us/site")
	if !old.acquire() { // a request of v1 still running
		t.Fatal("acquire on a live site failed")
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.Deploy(context.Background(), DeployRequest{Service: "us/site", Static: &StaticSite{Dir: writeSite(t, t.TempDir(), "v2")}, DrainTimeout: 10 * time.Second})
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for body(staticGet(t, front.URL, "/", nil)) != "<h1>home v2</h1>" {
		if time.Now().After(deadline) {
			t.Fatal("v2 never served")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("deploy returned (%v) while a v1 request was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := old.root.Stat("index.html"); err != nil {
		t.Fatalf("v1 closed under its running request: %v", err)
	}
	old.release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := old.root.Stat("index.html"); !errors.Is(err, os.ErrClosed) {
		t.Errorf("v1's directory after the drain: %v, want closed", err)
	}
	if body(staticGet(t, front.URL, "/", nil)) != "<h1>home v2</h1>" {
		t.Error("v2 stopped serving")
	}
	// Removing the service closes the live site too.
	live := activeSite(r, "us/site")
	if _, err := r.Remove(context.Background(), "us/site"); err != nil {
		t.Fatal(err)
	}
	if _, err := live.root.Stat("index.html"); !errors.Is(err, os.ErrClosed) {
		t.Errorf("removed site's directory: %v, want closed", err)
	}
}

// A deploy that fails its gate leaves no directory open behind it.
func TestFailedDeployClosesItsSite(t *testing.T) {
	r, _ := newTestRouter(t)
	site := writeSite(t, t.TempDir(), "v1")
	fds := func() int { ents, _ := os.ReadDir("/proc/self/fd"); return len(ents) }
	before := fds()
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := r.DeployAll(ctx, Cutover{Services: []DeployRequest{
			{Service: "us/site", Hosts: []string{"site.localhost"}, Static: &StaticSite{Dir: site}},
			{Service: "us/api", Hosts: []string{"api.localhost"}, Targets: []string{"127.0.0.1:1"}, Health: HealthCheck{Path: "/", Interval: 10 * time.Millisecond, Deadline: 50 * time.Millisecond}},
		}})
		cancel()
		if err == nil {
			t.Fatal("a deploy whose target refuses connections went through")
		}
	}
	if n := fds() - before; n >= 10 {
		t.Errorf("%d more open files after 20 failed deploys: their sites were not closed", n)
	}
}

// The site's files are learnt at deploy: a file that appears afterwards is
// not the release's (and a miss costs no disk lookup), one behind a
// symlinked directory is still served.
func TestStaticIndexBuiltAtDeploy(t *testing.T) {
	r, front := newTestRouter(t)
	dir := t.TempDir()
	site := writeSite(t, dir, "v1")
	deployStatic(t, r, "us/site", []string{"site.localhost"}, StaticSite{Dir: site})
	s := activeSite(r, "us/site")
	if !s.indexed.Load() {
		t.Fatal("site not indexed at deploy")
	}
	os.WriteFile(filepath.Join(site, "late.txt"), []byte("late"), 0o644)
	if res := staticGet(t, front.URL, "/late.txt", nil); res.StatusCode != 404 {
		t.Errorf("a file written after the deploy: %d", res.StatusCode)
	}
	for _, p := range []string{"//robots.txt", "/docs/./", "/docs", "/about", "/fonts/../robots.txt"} {
		if res := staticGet(t, front.URL, p, nil); res.StatusCode != 200 {
			t.Errorf("%s: %d", p, res.StatusCode)
		}
	}
	// A symlinked directory: the table is incomplete, lookups go to disk.
	os.Symlink("docs", filepath.Join(site, "handbook"))
	deployStatic(t, r, "us/site", nil, StaticSite{Dir: site})
	if activeSite(r, "us/site").indexed.Load() {
		t.Error("a site with a symlinked directory counted as fully indexed")
	}
	if res := staticGet(t, front.URL, "/handbook/", nil); res.StatusCode != 200 || body(res) != "<h1>docs</h1>" {
		t.Errorf("through the symlinked directory: %d %q", res.StatusCode, body(res))
	}
}

// A removed service's cached answers go with it, not when LRU gets to them.
func TestEdgeCacheDropsRemovedService(t *testing.T) {
	r, front := newTestRouter(t, WithEdgeCache("", 1<<20, 0))
	b, _ := assetBackend(t, "v1", map[string]string{"Cache-Control": "public, max-age=31536000, immutable"})
	deploy(t, r, "us/site", []string{"site.localhost"}, b.addr)
	if _, xc := cget(t, front.URL, asset, nil); xc != "MISS" {
		t.Fatalf("first: %q", xc)
	}
	if _, xc := cget(t, front.URL, asset, nil); xc != "HIT" {
		t.Fatalf("second: %q", xc)
	}
	if _, err := r.Remove(context.Background(), "us/site"); err != nil {
		t.Fatal(err)
	}
	r.cache.mu.Lock()
	n, mem := len(r.cache.entries), r.cache.memBytes
	r.cache.mu.Unlock()
	if n != 0 || mem != 0 {
		t.Errorf("after the removal: %d keys, %d bytes cached", n, mem)
	}
}
