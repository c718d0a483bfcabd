//go:build integration

package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The day-two commands with the real binary: logs (a hook's secret shows as
// [REDACTED], instance lines name their instance), ps, restart and scale
// under load with no failed request, run with the store's env and exit code,
// stop (503 maintenance page) and start.
func TestDayTwo(t *testing.T) {
	t.Parallel()
	p := newProject(t)
	addSecret(t, p, "us", "STRIPE_KEY")
	p.git("commit", "-q", "-am", "us: secret STRIPE_KEY")
	b := make([]byte, 12)
	rand.Read(b)
	canary := "sk_canary_" + hex.EncodeToString(b)
	addr := freeAddr(t)
	p.serve(addr)
	p.deploy("us", "STRIPE_KEY="+canary, `SLIPWAY_HOOK_INSTALL=echo "install sees $STRIPE_KEY"`)
	_, port, _ := net.SplitHostPort(addr)
	base := "http://us.localhost:" + port

	logs, _ := p.mustRun(time.Minute, nil, "logs", "-C", p.dir, "--store-id", "us")
	if strings.Contains(logs, canary) || !strings.Contains(logs, "deploy:install | install sees [REDACTED]") {
		t.Errorf("logs: want the hook's line with the secret redacted:\n%s", logs)
	}
	if !strings.Contains(logs, "acme-shops-us-storefront-unified-nextjs-") {
		t.Errorf("logs: no line names a storefront instance:\n%s", logs)
	}
	ps, _ := p.mustRun(time.Minute, nil, "ps", "-C", p.dir, "--store-id", "us")
	if strings.Count(ps, " serving ") != 2 || !strings.Contains(ps, "MiB") {
		t.Errorf("ps: want 2 serving instances with memory:\n%s", ps)
	}

	stop := load(t, base+"/")
	// Load before and after as well: a restart and scale that finish in a
	// fraction of a second must still be measured against a running load
	// (and the old instances' drain is covered by the requests after).
	time.Sleep(500 * time.Millisecond)
	p.mustRun(2*time.Minute, nil, "restart", "-C", p.dir, "--store-id", "us")
	p.mustRun(2*time.Minute, nil, "scale", "-C", p.dir, "--store-id", "us", "storefront-unified-nextjs=2")
	time.Sleep(time.Second)
	if total, failed := stop(); failed != 0 || total < 20 {
		t.Errorf("restart and scale under load: %d of %d requests failed", failed, total)
	}
	ps, _ = p.mustRun(time.Minute, nil, "ps", "-C", p.dir, "--store-id", "us")
	if n := strings.Count(ps, "storefront-unified-nextjs "); n != 2 {
		t.Errorf("after scale to 2: %d storefront instances:\n%s", n, ps)
	}

	out, _ := p.mustRun(time.Minute, nil, "run", "-C", p.dir, "--store-id", "us", "--", "node", "-e", "console.log(process.env.CURRENCY, process.env.STRIPE_KEY)")
	if strings.TrimSpace(out) != "USD [REDACTED]" {
		t.Errorf("run: %q, want the store's env with the secret redacted", out)
	}
	if _, _, code := p.run(time.Minute, nil, "run", "-C", p.dir, "--store-id", "us", "--", "node", "-e", "process.exit(7)"); code != 7 {
		t.Errorf("run exit code %d, want 7", code)
	}

	p.mustRun(time.Minute, nil, "stop", "-C", p.dir, "--store-id", "us")
	resp, err := httpClient.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("stopped store: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	p.mustRun(2*time.Minute, nil, "start", "-C", p.dir, "--store-id", "us")
	if code, _ := get(t, base+"/"); code != 200 {
		t.Errorf("after start: %d", code)
	}

	// The canary is in no file under the state dir (instance logs included).
	filepath.Walk(p.data, func(path string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() || fi.Size() > 64<<20 {
			return nil
		}
		if b, _ := os.ReadFile(path); strings.Contains(string(b), canary) {
			t.Errorf("%s holds the secret", path)
		}
		return nil
	})
}

// load sends about 100 requests a second to url until the returned func is
// called (at most 3 minutes) and reports how many were sent and failed.
func load(t *testing.T, url string) func() (int64, int64) {
	var total, failed atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			limit := time.After(3 * time.Minute)
			tick := time.NewTicker(40 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-limit:
					return
				case <-tick.C:
				}
				total.Add(1)
				resp, err := httpClient.Get(url)
				if err != nil {
					failed.Add(1)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
			}
		}()
	}
	return func() (int64, int64) {
		close(done)
		wg.Wait()
		return total.Load(), failed.Load()
	}
}
