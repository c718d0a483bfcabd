//go:build integration

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// A store secret reaches the app and its hooks, and nothing else: not the
// CLI's or serve's output, not the release records, not a file under the
// data dir or .out (state.db, logs and image layers included), not any
// process's command line.
func TestCanarySecret(t *testing.T) {
	t.Parallel()
	p := newProject(t)
	addSecret(t, p, "us", "STRIPE_KEY")
	p.git("commit", "-q", "-am", "us: secret STRIPE_KEY")

	b := make([]byte, 12)
	rand.Read(b)
	canary := "sk_canary_" + hex.EncodeToString(b)

	serve := p.serve(freeAddr(t))

	// Watch every command line on the host while the deploy runs.
	watch := startArgvWatch(p, canary)
	dep := p.start([]string{
		"STRIPE_KEY=" + canary,
		`SLIPWAY_HOOK_INSTALL=echo "install sees $STRIPE_KEY"; sleep 2`,
		`SLIPWAY_HOOK_AFTER_DEPLOY=echo "post-deploy sees $STRIPE_KEY" >&2; test -n "$STRIPE_KEY" && echo present`,
	}, "deploy", "-C", p.dir, "--store-id", "us")
	code := dep.wait(t, 3*time.Minute)
	scans, sawHook, leaks := watch.stop()
	if code != 0 {
		t.Fatalf("deploy: exit %d\nstdout:\n%s\nstderr:\n%s", code, dep.stdout, dep.stderr)
	}
	t.Logf("%d scans of /proc/*/cmdline during the deploy; the install hook's sleep seen: %v", scans, sawHook)
	if !sawHook {
		t.Errorf("the argv watch never saw the install hook's sleep: it did not cover the deploy")
	}
	for _, l := range leaks {
		t.Errorf("secret on a command line: %s", l)
	}

	// The app and its hooks got it.
	r := p.releaseOf("us", p.git("rev-parse", "HEAD"))
	if r.Status != "live" || r.Error != "" {
		t.Fatalf("release %s: %q, error %q", r.ID, r.Status, r.Error)
	}
	if st, out, _ := r.stage("post-deploy"); st != "ok" || !strings.Contains(out, "present") {
		t.Errorf("post-deploy stage %q, output %q: want it to see STRIPE_KEY (present)", st, out)
	}
	if _, out, _ := r.stage("install"); !strings.Contains(out, "install sees [REDACTED]") {
		t.Errorf("install stage output %q, want the secret masked", out)
	}
	instances := 0
	for _, hp := range p.ownedProcs() {
		environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", hp.PID))
		if err != nil {
			t.Errorf("reading the environment of %s: %v", hp, err)
			continue
		}
		instances++
		if !bytes.Contains(environ, []byte("\x00STRIPE_KEY="+canary+"\x00")) {
			t.Errorf("instance %s did not get STRIPE_KEY in its environment", hp)
		}
	}
	if instances != usApps {
		t.Errorf("%d instance processes of us, want %d", instances, usApps)
	}

	// Nowhere else.
	_, rawReleases := p.releases("us")
	statusJSON, _ := p.mustRun(30*time.Second, nil, "status", "-C", p.dir, "--json")
	texts := map[string]string{
		"deploy stdout":   dep.stdout.String(),
		"deploy stderr":   dep.stderr.String(),
		"releases --json": rawReleases,
		"status --json":   statusJSON,
	}
	if !strings.Contains(dep.stderr.String(), "post-deploy sees [REDACTED]") {
		t.Errorf("deploy stderr does not show the post-deploy hook's masked line:\n%s", dep.stderr)
	}
	p.stopServe(serve)
	texts["serve stdout"] = serve.stdout.String()
	texts["serve stderr"] = serve.stderr.String()
	for name, s := range texts {
		if strings.Contains(s, canary) {
			t.Errorf("the secret is in the %s", name)
		}
	}
	files, blobs := 0, 0
	for _, root := range []string{p.data, p.out} {
		n, leaks := grepTree(t, root, canary)
		files += n
		for _, l := range leaks {
			t.Errorf("the secret is in %s", l)
		}
	}
	n, leaks := grepBlobs(t, filepath.Join(p.data, "images", "blobs"), canary)
	blobs += n
	for _, l := range leaks {
		t.Errorf("the secret is in image blob %s", l)
	}
	if files < 10 || blobs < 4 {
		t.Errorf("searched only %d files and %d image blobs: the data dir is not where the test thinks", files, blobs)
	}
	t.Logf("secret absent from %d outputs, %d files under .slipway and .out, %d image blobs (layers unpacked)", len(texts), files, blobs)
}

// addSecret adds `secrets: [name]` to a store's entry in slipway.yaml.
func addSecret(t *testing.T, p *project, store, name string) {
	t.Helper()
	f := filepath.Join(p.dir, "slipway.yaml")
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	var out []string
	found := false
	for _, l := range lines {
		out = append(out, l)
		if strings.HasPrefix(l, "  "+store+":") {
			out = append(out, "    secrets: ["+name+"]\n")
			found = true
		}
	}
	if !found {
		t.Fatalf("no entry for store %s in %s", store, f)
	}
	if err := os.WriteFile(f, []byte(strings.Join(out, "")), 0o644); err != nil {
		t.Fatal(err)
	}
}

// argvWatch scans every process's command line until stopped.
type argvWatch struct {
	stopc chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	scans int
	hook  bool
	leaks []string
}

func startArgvWatch(p *project, secret string) *argvWatch {
	w := &argvWatch{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		// Bounded: a deploy of the example takes seconds.
		for deadline := time.Now().Add(4 * time.Minute); time.Now().Before(deadline); {
			for _, hp := range hostProcs() {
				if strings.Contains(hp.Cmdline, secret) {
					w.mu.Lock()
					w.leaks = append(w.leaks, hp.String())
					w.mu.Unlock()
				}
				if hp.Cmdline == "sleep 2" && within(hp.Cwd, p.data) {
					w.mu.Lock()
					w.hook = true
					w.mu.Unlock()
				}
			}
			w.mu.Lock()
			w.scans++
			w.mu.Unlock()
			select {
			case <-w.stopc:
				return
			case <-time.After(25 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *argvWatch) stop() (scans int, sawHook bool, leaks []string) {
	close(w.stopc)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.scans, w.hook, w.leaks
}

// grepTree reads every regular file under root and returns how many it read
// and those that contain s.
func grepTree(t *testing.T, root, s string) (int, []string) {
	t.Helper()
	n := 0
	var hits []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		if bytes.Contains(b, []byte(s)) {
			hits = append(hits, path)
		}
		return nil
	})
	if err != nil {
		t.Errorf("searching %s: %v", root, err)
	}
	return n, hits
}

// grepBlobs searches every blob of an OCI layout, and inside each gzipped
// layer every file of the tar, for s.
func grepBlobs(t *testing.T, dir, s string) (int, []string) {
	t.Helper()
	n := 0
	var hits []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		if bytes.Contains(b, []byte(s)) {
			hits = append(hits, path)
		}
		if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			return nil
		}
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		tr := tar.NewReader(zr)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			body, err := io.ReadAll(tr)
			if err != nil {
				return fmt.Errorf("%s: %s: %w", path, h.Name, err)
			}
			if bytes.Contains(body, []byte(s)) || strings.Contains(h.Linkname, s) || strings.Contains(h.Name, s) {
				hits = append(hits, path+" ("+h.Name+")")
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("searching %s: %v", dir, err)
	}
	return n, hits
}
