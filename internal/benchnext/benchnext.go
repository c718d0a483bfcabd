// Package benchnext holds what bench/builds and bench/allstores share: a
// fresh git copy of testdata/realapps, Slipway builds timed by phase, the
// peer's plain `npm ci` / `next build`, and where Next's own build time
// went (read from the .next/trace file Next writes).
package benchnext

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/registry"
)

// NextApp is the Next.js app of testdata/realapps.
const NextApp = "storefront-unified-nextjs"

// CleanNPMEnv drops every npm cache setting from the environment, so
// Slipway's builds use the state dir's own (empty when the state dir is
// new) and each peer run names its own.
func CleanNPMEnv() {
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.EqualFold(k, "npm_config_cache") {
			os.Unsetenv(k)
		}
	}
	os.Setenv("npm_config_update_notifier", "false")
}

// Begin prepares a run: the work dir (a new temp dir named after bench when
// work is empty), npm's environment cleaned, and the machine's cores, Node
// version and load printed. done removes the work dir unless keep.
func Begin(bench, work string, keep bool) (dir string, done func(), err error) {
	if work == "" {
		if work, err = os.MkdirTemp("", "slipway-bench-"+bench+"-"); err != nil {
			return "", nil, err
		}
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return "", nil, err
	}
	done = func() {
		if !keep {
			os.RemoveAll(work)
		}
	}
	CleanNPMEnv()
	nodeV, _ := exec.Command("node", "--version").Output()
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("machine: %d cores, %s, node %s", runtime.NumCPU(), runtime.GOOS+"/"+runtime.GOARCH, nodeV)
	fmt.Printf("load average at start: %s", load)
	return work, done, nil
}

// CopyRepo copies testdata/realapps (sources only) into a fresh git
// repository at dst; edit, when set, changes the copy before the commit.
func CopyRepo(dst string, edit func(dir string) error) error {
	src, err := filepath.Abs(filepath.Join("testdata", "realapps"))
	if err != nil {
		return err
	}
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("run from the repository root: %w", err)
	}
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("copying %s: %v: %s", src, err, out)
	}
	for _, a := range []string{NextApp, "storefront-unified-nuxt"} {
		for _, junk := range []string{"node_modules", ".next", ".nuxt", ".output"} {
			os.RemoveAll(filepath.Join(dst, "apps", a, junk))
		}
	}
	if edit != nil {
		if err := edit(dst); err != nil {
			return err
		}
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"commit", "-qm", "realapps"}} {
		if err := Git(dst, args...); err != nil {
			return err
		}
	}
	return nil
}

// Git runs git in dir with a fixed identity.
func Git(dir string, args ...string) error {
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.email=b@b", "-c", "user.name=bench", "-c", "commit.gpgsign=false"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %v: %v: %s", args, err, out)
	}
	return nil
}

// Result is one Slipway build: its wall time and each image's phases.
type Result struct {
	Total  time.Duration
	Images []pipeline.BuiltImage
}

// Build runs Slipway's build of stores (nil: all) of repo with the state
// dir state (images in state/images, caches in state/cache), logging to log.
func Build(repo, state string, stores []string, log io.Writer) (*Result, error) {
	cfg, err := config.Load(repo, "")
	if err != nil {
		return nil, err
	}
	l, err := registry.OpenLayout(filepath.Join(state, "images"))
	if err != nil {
		return nil, err
	}
	if stores == nil {
		for _, s := range cfg.Stores {
			stores = append(stores, s.ID)
		}
	}
	t0 := time.Now()
	res, err := pipeline.Build(context.Background(), pipeline.BuildOptions{Config: cfg, Stores: stores, Store: pipeline.LayoutStore{Layout: l}, Log: log, Verbose: log != io.Discard})
	if err != nil {
		return nil, err
	}
	r := &Result{Total: time.Since(t0), Images: res.Images}
	for _, im := range res.Images {
		if im.Err != nil {
			return nil, im.Err
		}
	}
	return r, nil
}

// Phases formats an image's phases: "npm ci 19.3s, npm run build 51.2s, ...".
func Phases(im pipeline.BuiltImage) string {
	var parts []string
	for _, p := range im.Phases {
		parts = append(parts, fmt.Sprintf("%s %.1fs", p.Name, float64(p.Millis)/1000))
	}
	return strings.Join(parts, ", ")
}

// Peer times `npm ci` then `next build` in a fresh copy (at dir) of the
// composed app, with npm's download cache at npmCache.
func Peer(composed, dir, npmCache string) (npmCI, nextBuild time.Duration, err error) {
	if err := copySources(composed, dir); err != nil {
		return 0, 0, err
	}
	var d [2]time.Duration
	for i, argv := range [][]string{{"npm", "ci", "--include=dev", "--no-audit", "--no-fund"}, {"npx", "--no-install", "next", "build"}} {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "npm_config_cache="+npmCache, "NEXT_TELEMETRY_DISABLED=1")
		t0 := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, 0, fmt.Errorf("%v in %s: %v: %s", argv, dir, err, out)
		}
		d[i] = time.Since(t0)
	}
	return d[0], d[1], nil
}

// copySources copies the composed app's files but for what its build made
// (node_modules, .next, .deploy).
func copySources(composed, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(composed)
	if err != nil {
		return err
	}
	for _, e := range ents {
		switch e.Name() {
		case "node_modules", ".next", ".deploy":
			continue
		}
		if out, err := exec.Command("cp", "-a", filepath.Join(composed, e.Name()), dir).CombinedOutput(); err != nil {
			return fmt.Errorf("copying %s: %v: %s", e.Name(), err, out)
		}
	}
	return nil
}

// NextSpans says where a `next build` spent its time, from the .next/trace
// file it left in app: the webpack compiles, the build traces (run beside
// static generation) and the standalone copy. "" when there is no trace.
func NextSpans(app string) string {
	b, err := os.ReadFile(filepath.Join(app, ".next", "trace"))
	if err != nil {
		return ""
	}
	type span struct {
		Name     string `json:"name"`
		Duration int64  `json:"duration"`
		ParentID int64  `json:"parentId"`
		ID       int64  `json:"id"`
	}
	sum := map[string]time.Duration{}
	var root int64
	var spans []span
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var batch []span
		if json.Unmarshal([]byte(line), &batch) != nil {
			continue
		}
		spans = append(spans, batch...)
	}
	for _, s := range spans {
		if s.Name == "next-build" {
			root = s.ID // the last build's spans are the ones that count
		}
	}
	for _, s := range spans {
		if s.ParentID == root || s.Name == "run-webpack-compiler" {
			sum[s.Name] += time.Duration(s.Duration) * time.Microsecond
		}
	}
	f := func(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }
	return fmt.Sprintf("webpack %s, build traces %s (beside static generation %s), standalone %s",
		f(sum["run-webpack-compiler"]), f(sum["node-file-trace-build"]), f(sum["static-generation"]), f(sum["write-standalone-directory"]))
}

// DirSize is the bytes under dir (0 when it does not exist).
func DirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
		return nil
	})
	return n
}
