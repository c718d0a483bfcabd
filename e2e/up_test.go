//go:build integration

package e2e

import (
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The README's first command: `slipway up` composes, builds and deploys every
// store of the example, prints a URL table, serves every URL, and on Ctrl-C
// exits 0 leaving nothing running.
func TestUp(t *testing.T) {
	t.Parallel()
	p := newProject(t)
	addr := freeAddr(t)
	up := p.start(nil, "up", "-C", p.dir, "--http", addr)
	m := up.waitOutput(t, false, regexp.MustCompile(`serving on http://(\S+)`), 120*time.Second)
	if m[1] != addr {
		t.Errorf("serving on %s, want %s", m[1], addr)
	}
	t.Logf("slipway up served in %s", time.Since(up.started).Round(time.Millisecond))

	// The summary table: STORE RELEASE STATUS URL... TIME, one row per store.
	out := up.stdout.String()
	table, _, _ := strings.Cut(out, "serving on")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "STORE") {
		t.Fatalf("no summary table in stdout:\n%s", out)
	}
	urlRE := regexp.MustCompile(`http://\S+`)
	var stores []string
	urls := 0
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) < 3 {
			t.Errorf("summary row %q", line)
			continue
		}
		store, status := f[0], f[2]
		stores = append(stores, store)
		if status != "live" {
			t.Errorf("store %s: status %q, want live", store, status)
		}
		us := urlRE.FindAllString(line, -1)
		var local, loop int
		for _, u := range us {
			switch {
			case strings.HasPrefix(u, "http://"+store+".localhost:"):
				local++
			case strings.HasPrefix(u, "http://127.0.0.1:"):
				loop++
			default:
				t.Errorf("store %s: unexpected URL %s", store, u)
			}
			urls++
			code, body := get(t, u)
			if code != http.StatusOK {
				t.Errorf("GET %s = %d", u, code)
				continue
			}
			if !strings.Contains(body, `<span id="store">`+store+`</span>`) {
				t.Errorf("GET %s does not show store %s:\n%s", u, store, body)
			}
		}
		if local != 1 || loop != 1 {
			t.Errorf("store %s: URLs %q, want one http://%s.localhost:PORT/ and one http://127.0.0.1:PORT/", store, us, store)
		}
	}
	slices.Sort(stores)
	if want := []string{"eu", "sports-brand", "us"}; !slices.Equal(stores, want) {
		t.Errorf("stores in the summary: %q, want %q", stores, want)
	}
	t.Logf("%d URLs answered 200 with their store", urls)
	running := p.ownedProcs()
	if len(running) == 0 {
		t.Errorf("no instance process found under the data dir while serving: the orphan check below would prove nothing")
	}

	// Ctrl-C: exit 0 within 30 s, every instance stopped.
	t0 := time.Now()
	up.cmd.Process.Signal(os.Interrupt)
	if code := up.wait(t, 30*time.Second); code != 0 {
		t.Errorf("slipway up exited %d after SIGINT\nstderr:\n%s", code, up.stderr)
	}
	t.Logf("slipway up exited %s after SIGINT; %d instance processes were running", time.Since(t0).Round(time.Millisecond), len(running))
	if left := p.ownedProcs(); len(left) != 0 {
		t.Errorf("%d process(es) of the data dir still running after slipway up exited:\n%s", len(left), describe(left))
	}
}
