package build

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/testenv"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func stepNames(t *testing.T, dir, cmd string) string {
	t.Helper()
	steps, err := Plan(dir, cmd)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range steps {
		names = append(names, s.Name)
	}
	return strings.Join(names, " && ")
}

func TestPlanPicksTheBuild(t *testing.T) {
	dir := t.TempDir()
	if got := stepNames(t, dir, ""); got != "" {
		t.Errorf("empty app: %q", got)
	}
	writeFiles(t, dir, map[string]string{"package.json": `{"scripts":{"build":"node b.js"}}`})
	if got := stepNames(t, dir, ""); got != "npm run build" {
		t.Errorf("no lockfile: %q", got)
	}
	for lock, want := range map[string]string{
		"package-lock.json": "npm ci --include=dev --no-audit --no-fund && npm run build",
		"yarn.lock":         "yarn install --frozen-lockfile && yarn run build",
		"pnpm-lock.yaml":    "pnpm install --frozen-lockfile && pnpm run build",
	} {
		d := t.TempDir()
		writeFiles(t, d, map[string]string{"package.json": `{"scripts":{"build":"x"}}`, lock: ""})
		if got := stepNames(t, d, ""); got != want {
			t.Errorf("%s: %q, want %q", lock, got, want)
		}
	}
	if got := stepNames(t, dir, "make dist"); got != "make dist" {
		t.Errorf("configured command: %q", got)
	}
	writeFiles(t, dir, map[string]string{CallbackFile: "echo hi"})
	if got := stepNames(t, dir, "make dist"); got != CallbackFile {
		t.Errorf("callback wins: %q", got)
	}
	writeFiles(t, dir, map[string]string{"package.json": `{not json`})
	os.Remove(filepath.Join(dir, CallbackFile))
	if _, err := Plan(dir, ""); err == nil || !strings.Contains(err.Error(), "package.json") {
		t.Errorf("bad package.json: %v", err)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunnerEnvFailureIsolationAndTail(t *testing.T) {
	ok, bad := t.TempDir(), t.TempDir()
	writeFiles(t, ok, map[string]string{CallbackFile: `echo "store=$SLIPWAY_STORE_ID app=$SLIPWAY_APP commit=$SLIPWAY_COMMIT env=$NODE_ENV brand=$BRAND"; echo built > out.txt`})
	writeFiles(t, bad, map[string]string{CallbackFile: "i=0; while [ $i -lt 80 ]; do echo line$i; i=$((i+1)); done; echo boom >&2; exit 3"})
	var out syncBuf
	r := &Runner{Jobs: 2, Out: &out, Commit: "abc123"}
	res := r.Run(context.Background(), []Task{
		{Store: "us", App: "web", Dir: ok, Env: map[string]string{"BRAND": "fashion"}},
		{Store: "eu", App: "web", Dir: bad},
	})
	if res[0].Err != nil {
		t.Fatalf("ok build failed: %v", res[0].Err)
	}
	if want := "store=us app=web commit=abc123 env=production brand=fashion"; len(res[0].Tail) != 1 || res[0].Tail[0] != want {
		t.Errorf("env: %q", res[0].Tail)
	}
	if b, _ := os.ReadFile(filepath.Join(ok, "out.txt")); string(b) != "built\n" {
		t.Errorf("build did not run in the app dir")
	}
	if res[1].Err == nil || !strings.Contains(res[1].Err.Error(), "eu/web") || !strings.Contains(res[1].Err.Error(), "exit status 3") {
		t.Errorf("failing build: %v", res[1].Err)
	}
	if len(res[1].Tail) != TailLines || res[1].Tail[TailLines-1] != "boom" {
		t.Errorf("tail: %d lines, last %q", len(res[1].Tail), res[1].Tail[len(res[1].Tail)-1])
	}
	// Without --verbose only the failing build's tail is printed, prefixed.
	s := out.String()
	if strings.Contains(s, "store=us") || !strings.Contains(s, "[eu/web] boom") || strings.Contains(s, "[eu/web] line0\n") {
		t.Errorf("output:\n%s", s)
	}
}

func TestRunnerCancelKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	writeFiles(t, dir, map[string]string{CallbackFile: "sleep 60 & echo $! > child.pid; wait"})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for i := 0; i < 100; i++ {
			if _, err := os.Stat(pidFile); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
	}()
	start := time.Now()
	res := (&Runner{}).Run(ctx, []Task{{Store: "s", App: "a", Dir: dir}})
	if res[0].Err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("cancel: %v after %s", res[0].Err, time.Since(start))
	}
	b, _ := os.ReadFile(pidFile)
	pid := strings.TrimSpace(string(b))
	time.Sleep(100 * time.Millisecond)
	if _, err := os.Stat("/proc/" + pid); err == nil {
		if st, _ := os.ReadFile("/proc/" + pid + "/stat"); !strings.Contains(string(st), ") Z ") {
			t.Errorf("child %s survived the cancelled build", pid)
		}
	}
}

func listDeploy(t *testing.T, dir string) string {
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	sort.Strings(out)
	return strings.Join(out, " ")
}

func TestCollectPresetsAndGlobs(t *testing.T) {
	next := t.TempDir()
	writeFiles(t, next, map[string]string{
		".next/standalone/server.js": "s", ".next/standalone/node_modules/x/i.js": "x",
		".next/static/chunk.js": "c", ".next/cache/big": "no", "public/robots.txt": "r", "src/page.tsx": "no",
		EntrypointCallback: "echo pre",
	})
	p, err := Collect(next, Selection{Framework: "next"})
	if err != nil {
		t.Fatal(err)
	}
	if got := listDeploy(t, p.Dir); got != ".next/static/chunk.js .slipway/entrypoint.sh .slipway/start/next-server.cjs node_modules/x/i.js public/robots.txt server.js" {
		t.Errorf("next: %s", got)
	}
	if strings.Join(p.Entrypoint, " ") != "node .slipway/start/next-server.cjs" || p.Files != 6 {
		t.Errorf("next: %+v", p)
	}
	// Collect replaces an old .deploy completely.
	os.Remove(filepath.Join(next, "public/robots.txt"))
	p, _ = Collect(next, Selection{Framework: "next"})
	if strings.Contains(listDeploy(t, p.Dir), "robots") {
		t.Errorf("stale file kept")
	}
	if _, err := Collect(t.TempDir(), Selection{Framework: "next"}); err == nil || !strings.Contains(err.Error(), "standalone") {
		t.Errorf("missing standalone: %v", err)
	}

	nuxt := t.TempDir()
	writeFiles(t, nuxt, map[string]string{".output/server/index.mjs": "s", ".output/public/a.css": "a", "pages/x.vue": "no"})
	p, err = Collect(nuxt, Selection{Framework: "nuxt"})
	if err != nil || listDeploy(t, p.Dir) != ".output/public/a.css .output/server/index.mjs .slipway/start/nuxt-server.mjs" || p.Entrypoint[1] != ".slipway/start/nuxt-server.mjs" {
		t.Errorf("nuxt: %v %s", err, listDeploy(t, nuxt))
	}

	plain := t.TempDir()
	writeFiles(t, plain, map[string]string{"package.json": `{"main":"srv.js"}`, "srv.js": "s", "lib/a.js": "a",
		"node_modules/.cache/x": "no", "node_modules/dep/i.js": "d", ".git/HEAD": "no", CallbackFile: "no", "test/a_test.js": "t"})
	p, err = Collect(plain, Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if listDeploy(t, p.Dir) != "lib/a.js node_modules/dep/i.js package.json srv.js test/a_test.js" || p.Entrypoint[1] != "srv.js" {
		t.Errorf("plain: %v %s %v", err, listDeploy(t, p.Dir), p.Entrypoint)
	}
	p, err = Collect(plain, Selection{Include: []string{"**/*.js", "package.json"}, Exclude: []string{"test/**", "node_modules/**"}})
	if err != nil || listDeploy(t, p.Dir) != "lib/a.js package.json srv.js" {
		t.Errorf("globs: %v %s", err, listDeploy(t, p.Dir))
	}
	if _, err := Collect(plain, Selection{Include: []string{"[bad"}}); err == nil {
		t.Errorf("bad glob accepted")
	}
}

// TestExampleAppsBuildAndRun builds the example's base apps for real with node
// and starts their production entrypoint from .deploy alone.
func TestExampleAppsBuildAndRun(t *testing.T) {
	if testenv.Node(t) == "" {
		return
	}
	_, file, _, _ := runtime.Caller(0)
	apps := filepath.Join(filepath.Dir(file), "..", "..", "examples", "multistore", "apps")
	for app, fw := range map[string]string{"storefront-unified-nextjs": "next", "storefront-unified-nuxt": "nuxt", "storefront-middleware": ""} {
		t.Run(app, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), app)
			if out, err := exec.Command("cp", "-a", filepath.Join(apps, app), dir).CombinedOutput(); err != nil {
				t.Fatal(err, string(out))
			}
			res := (&Runner{}).Run(context.Background(), []Task{{Store: "us", App: app, Dir: dir}})
			if res[0].Err != nil {
				t.Fatalf("build: %v\n%s", res[0].Err, strings.Join(res[0].Tail, "\n"))
			}
			p, err := Collect(dir, Selection{Framework: fw})
			if err != nil {
				t.Fatal(err)
			}
			port := freePort(t)
			cmd := exec.Command(p.Entrypoint[0], p.Entrypoint[1:]...)
			cmd.Dir = p.Dir
			cmd.Env = append(os.Environ(), "PORT="+port, "HOST=127.0.0.1", "SLIPWAY_STORE_ID=us")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cmd.Process.Kill(); cmd.Wait() }()
			if !waitHTTP("http://127.0.0.1:"+port+"/healthz", 10*time.Second) {
				t.Fatalf("%s did not answer /healthz from .deploy", app)
			}
		})
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	return strconv.Itoa(testenv.FreePort(t))
}

func waitHTTP(url string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}
