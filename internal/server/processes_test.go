package server

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/state"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// procRepo is a one-store repository whose app declares a web and a worker
// process in its Procfile; the worker writes a heartbeat line to /data every
// 100 ms and a "stopped" line on SIGTERM.
func procRepo(t *testing.T) string {
	t.Helper()
	testenv.Node(t)
	dir := filepath.Join(t.TempDir(), "shop")
	files := map[string]string{
		"slipway.yaml":          "project: shop\napps:\n  - {path: apps/web, framework: node}\nstores:\n  us: {projectName: shop, region: r, framework: node}\n",
		"apps/stores/us/.keep":  "",
		"apps/web/package.json": `{"name":"web","version":"1.0.0"}`,
		"apps/web/Procfile":     "# process types\nweb: node server.js\nworker: node worker.js\n",
		"apps/web/server.js":    `require('http').createServer((q, s) => s.end('web ' + process.env.SLIPWAY_RELEASE)).listen(+process.env.PORT, process.env.HOST);`,
		"apps/web/worker.js": `const fs = require('fs'), f = process.env.SLIPWAY_DATA_DIR + '/heartbeat', r = process.env.SLIPWAY_RELEASE;
setInterval(() => fs.appendFileSync(f, 'beat ' + r + ' ' + Date.now() + '\n'), 100);
process.on('SIGTERM', () => { fs.appendFileSync(f, 'stopped ' + r + ' ' + Date.now() + '\n'); process.exit(0); });`,
	}
	for p, c := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitRun(t, dir, "init", "-q")
	gitRun(t, dir, "add", "-A")
	gitRun(t, dir, "commit", "-q", "-m", "v1")
	return dir
}

func gitRun(t *testing.T, dir string, args ...string) {
	t.Helper()
	c := exec.Command("git", append([]string{"-C", dir, "-c", "user.email=t@t", "-c", "user.name=t", "-c", "commit.gpgsign=false"}, args...)...)
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v %s", args, err, out)
	}
}

// buildDeploy builds the repo into the server's image store and deploys the store.
func (h *harness) buildDeploy(dir string) (*pipelineRelease, []pipeline.Event) {
	h.t.Helper()
	cfg, err := config.Load(dir, "")
	if err != nil {
		h.t.Fatal(err)
	}
	res, err := pipeline.Build(context.Background(), pipeline.BuildOptions{Config: cfg, Stores: []string{"us"}, Store: pipeline.LayoutStore{Layout: h.s.Images}, CacheDir: "-"})
	if err != nil || res.Failed() {
		h.t.Fatalf("build: %v %+v", err, res)
	}
	req, err := pipeline.NewDeployRequest(cfg, "us", res.Images, pipeline.RequestOptions{Commit: res.Revision.Commit, Kind: state.KindBuildDeploy})
	if err != nil {
		h.t.Fatal(err)
	}
	for i := range req.Apps {
		req.Apps[i].Health.Interval = 50 * time.Millisecond
	}
	rel, err, evs := h.deploy(req)
	if err != nil {
		h.t.Fatalf("deploy: %v", err)
	}
	return &pipelineRelease{ID: rel.ID}, evs
}

type pipelineRelease struct{ ID string }

// A worker's heartbeat continues across a deploy; the old worker gets
// SIGTERM only after the new web is live; a crashed worker is restarted.
func TestProcessTypesAcrossADeploy(t *testing.T) {
	dir := procRepo(t)
	data := t.TempDir()
	h := start(t, data)
	rel1, _ := h.buildDeploy(dir)
	beats := filepath.Join(data, "runtime", "data", "shop-us", "heartbeat")
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(readFile(beats), "beat "+rel1.ID) })
	if code, body := h.get("us.localhost", "/"); code != 200 || body != "web "+rel1.ID {
		t.Fatalf("web: %d %q", code, body)
	}

	os.WriteFile(filepath.Join(dir, "apps/web/server.js"), []byte(`require('http').createServer((q, s) => s.end('web2 ' + process.env.SLIPWAY_RELEASE)).listen(+process.env.PORT, process.env.HOST);`), 0o644)
	gitRun(t, dir, "commit", "-qam", "v2")
	rel2, evs := h.buildDeploy(dir)
	var live time.Time
	for _, e := range evs {
		if strings.HasPrefix(e.Message, "live:") {
			live = e.Time
		}
	}
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(readFile(beats), "beat "+rel2.ID) })
	log := readFile(beats)
	var stopped int64
	var last int64
	maxGap := int64(0)
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		f := strings.Fields(l)
		ms, _ := strconv.ParseInt(f[2], 10, 64)
		if f[0] == "stopped" && f[1] == rel1.ID {
			stopped = ms
		}
		if f[0] == "beat" {
			if last != 0 && ms-last > maxGap {
				maxGap = ms - last
			}
			last = ms
		}
	}
	if stopped == 0 {
		t.Fatalf("the old worker never got SIGTERM:\n%s", log)
	}
	if live.IsZero() || stopped < live.UnixMilli() {
		t.Errorf("old worker stopped at %d, before the new web went live at %d", stopped, live.UnixMilli())
	}
	if maxGap > 1500 {
		t.Errorf("heartbeat stopped for %d ms across the deploy", maxGap)
	}
	procs := h.instances(map[string]string{driver.LabelRole: pipeline.RoleProcess})
	if len(procs) != 1 || procs[0].Labels[driver.LabelRelease] != rel2.ID || procs[0].Labels[pipeline.LabelProcess] != "worker" {
		t.Errorf("process instances after the deploy: %+v", procs)
	}

	// A crashed worker is restarted by the supervisor.
	pid := findPID(t, "worker.js", data)
	syscall.Kill(pid, syscall.SIGKILL)
	n := strings.Count(readFile(beats), "\n")
	waitFor(t, 15*time.Second, func() bool { return findPIDOrZero("worker.js", data) != 0 && findPIDOrZero("worker.js", data) != pid })
	waitFor(t, 5*time.Second, func() bool { return strings.Count(readFile(beats), "\n") > n+2 })
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func waitFor(t *testing.T, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func findPID(t *testing.T, arg, within string) int {
	t.Helper()
	if pid := findPIDOrZero(arg, within); pid != 0 {
		return pid
	}
	t.Fatalf("no process running %s", arg)
	return 0
}

// findPIDOrZero finds a node process running arg whose cwd is below within.
func findPIDOrZero(arg, within string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		parts := strings.Split(string(cmd), "\x00")
		if len(parts) < 2 || filepath.Base(parts[0]) != "node" || parts[1] != arg {
			continue
		}
		if cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd")); err == nil && strings.HasPrefix(cwd, within) {
			return pid
		}
	}
	return 0
}

// A schedule runs in the live release on time, never overlapping itself (a
// run longer than its interval skips the firings it covers), output in the
// store's log.
func TestScheduleRunsWithoutOverlap(t *testing.T) {
	dir := procRepo(t)
	cfgPath := filepath.Join(dir, "slipway.yaml")
	b, _ := os.ReadFile(cfgPath)
	os.WriteFile(cfgPath, append(b, []byte(`schedules:
  - name: tick
    cron: "@every 1s"
    command: 'echo "start $(date +%s%N)" >> "$SLIPWAY_DATA_DIR/cron"; echo hello from cron; sleep 2.5; echo "end $(date +%s%N)" >> "$SLIPWAY_DATA_DIR/cron"'
`)...), 0o644)
	gitRun(t, dir, "commit", "-qam", "schedule")
	data := t.TempDir()
	h := start(t, data)
	h.buildDeploy(dir)
	cronLog := filepath.Join(data, "runtime", "data", "shop-us", "cron")
	waitFor(t, 20*time.Second, func() bool { return strings.Count(readFile(cronLog), "end ") >= 2 })
	lines := strings.Split(strings.TrimSpace(readFile(cronLog)), "\n")
	open := false
	var prevEnd int64
	for _, l := range lines {
		f := strings.Fields(l)
		ns, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "start":
			if open {
				t.Fatalf("a run started while the previous one was running:\n%s", strings.Join(lines, "\n"))
			}
			if prevEnd != 0 && ns < prevEnd {
				t.Fatalf("overlap:\n%s", strings.Join(lines, "\n"))
			}
			open = true
		case "end":
			open, prevEnd = false, ns
		}
	}
	jl := readFile(pipeline.JobLogPath(data, "us"))
	if !strings.Contains(jl, "hello from cron") || !strings.Contains(jl, "still running: this firing is skipped") {
		t.Errorf("the store's log lacks the schedule's output or its skipped firings:\n%.3000s", jl)
	}
}
