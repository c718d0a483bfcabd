//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/testenv"
)

// slipwayBin is the binary TestMain builds from this checkout.
var slipwayBin string

// repoRoot is the checkout the binary and the example come from.
var repoRoot string

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	for _, tool := range []string{"git", "node", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %s is needed: %v\n", tool, err)
			return 1
		}
	}
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	repoRoot = root
	tmp, err := os.MkdirTemp("", "slipway-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	slipwayBin = filepath.Join(tmp, "slipway")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	build := exec.CommandContext(ctx, "go", "build", "-o", slipwayBin, "./cmd/slipway")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building slipway: %v\n%s", err, out)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: built %s in %s\n", slipwayBin, time.Since(t0).Round(time.Millisecond))
	return m.Run()
}

// project is a git repository holding a copy of examples/multistore, with
// the data dir of the slipway commands run on it.
type project struct {
	t    *testing.T
	dir  string // the copy's root (slipway -C)
	data string // <dir>/.slipway
	out  string // <dir>/.out, the composed apps

	mu    sync.Mutex
	procs []*proc // every slipway command started on it
}

// newProject copies examples/multistore (without .out and .slipway) into a
// temporary directory and commits it. On cleanup every slipway command still
// running is killed, then every host process the project's data dir owns.
func newProject(t *testing.T) *project {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "shop")
	src := filepath.Join(repoRoot, "examples", "multistore")
	if err := copyTree(src, dir); err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}
	return commitProject(t, dir, "multistore example")
}

// commitProject makes dir a git repository with everything in it committed
// as msg. On cleanup every slipway command still running on the project is
// killed, then every host process its data dir owns.
func commitProject(t *testing.T, dir, msg string) *project {
	t.Helper()
	p := &project{t: t, dir: dir, data: filepath.Join(dir, ".slipway"), out: filepath.Join(dir, ".out")}
	p.git("init", "-q", "-b", "main")
	p.git("add", "-A")
	p.git("commit", "-q", "-m", msg)
	t.Cleanup(p.cleanup)
	return p
}

// writeFiles writes files (path relative to dir: content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// copyTree copies regular files and directories with their modes, leaving
// out the build and Slipway outputs a checkout may hold.
func copyTree(src, dst string) error {
	skip := map[string]bool{".out": true, ".slipway": true, "node_modules": true, ".next": true, ".output": true, "dist": true, ".git": true}
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if rel != "." && skip[d.Name()] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case info.Mode().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, info.Mode().Perm())
		default:
			return fmt.Errorf("%s: not a regular file or directory", path)
		}
	})
}

// env is the environment of every command the tests run: the test's own
// without SLIPWAY_* (flags come from there) and without git config, plus extra.
func env(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "SLIPWAY_") || strings.HasPrefix(k, "GIT_") || k == "STRIPE_KEY" {
			continue
		}
		out = append(out, kv)
	}
	out = append(out, "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@example.invalid", "GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@example.invalid")
	return append(out, extra...)
}

func (p *project) git(args ...string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = p.dir
	cmd.Env = env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		p.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// change appends a line to a file of the base storefront and commits it;
// it returns the new commit.
func (p *project) change(what string) string {
	p.t.Helper()
	f := filepath.Join(p.dir, "apps", "storefront-unified-nextjs", "components", "footer.js")
	b, err := os.ReadFile(f)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(f, append(b, []byte("// "+what+"\n")...), 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.git("commit", "-q", "-am", what)
	return p.git("rev-parse", "HEAD")
}

// syncBuffer collects a command's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a slipway command running in the background.
type proc struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{}
	started        time.Time
	code           int // after done: exit code, -1 when killed by a signal
	took           time.Duration
}

// start runs slipway args in the project's directory with env() plus extraEnv.
func (p *project) start(extraEnv []string, args ...string) *proc {
	p.t.Helper()
	cmd := exec.Command(slipwayBin, args...)
	cmd.Dir = p.dir
	cmd.Env = env(extraEnv...)
	pr := &proc{name: "slipway " + strings.Join(args, " "), cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = pr.stdout, pr.stderr
	// Output copying must not outlive the process (a leftover child holding
	// the pipe would block Wait forever).
	cmd.WaitDelay = 5 * time.Second
	t0 := time.Now()
	pr.started = t0
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("%s: %v", pr.name, err)
	}
	p.mu.Lock()
	p.procs = append(p.procs, pr)
	p.mu.Unlock()
	go func() {
		cmd.Wait()
		pr.took = time.Since(t0)
		pr.code = cmd.ProcessState.ExitCode()
		close(pr.done)
	}()
	return pr
}

// wait waits up to d for the command to exit and returns its exit code.
func (pr *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-pr.done:
		return pr.code
	case <-time.After(d):
		pr.cmd.Process.Kill()
		<-pr.done
		t.Fatalf("%s did not exit within %s\nstdout:\n%s\nstderr:\n%s", pr.name, d, pr.stdout, pr.stderr)
		return -1
	}
}

func (pr *proc) exited() bool {
	select {
	case <-pr.done:
		return true
	default:
		return false
	}
}

// waitOutput waits up to d for a line of the command's stdout or stderr to
// match re and returns the match; it fails the test if the command exits or
// the time runs out first.
func (pr *proc) waitOutput(t *testing.T, stderr bool, re *regexp.Regexp, d time.Duration) []string {
	t.Helper()
	buf := pr.stdout
	if stderr {
		buf = pr.stderr
	}
	deadline := time.Now().Add(d)
	for {
		if m := re.FindStringSubmatch(buf.String()); m != nil {
			return m
		}
		if pr.exited() {
			if m := re.FindStringSubmatch(buf.String()); m != nil {
				return m
			}
			t.Fatalf("%s exited (%d) before printing %q\nstdout:\n%s\nstderr:\n%s", pr.name, pr.code, re, pr.stdout, pr.stderr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s printed no %q within %s\nstdout:\n%s\nstderr:\n%s", pr.name, re, d, pr.stdout, pr.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill9 sends SIGKILL to the command (not to anything it started) and waits for it.
func (pr *proc) kill9(t *testing.T) {
	t.Helper()
	if err := pr.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %s: %v", pr.name, err)
	}
	select {
	case <-pr.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still running 10s after SIGKILL", pr.name)
	}
}

// run runs slipway args to completion (at most d) and returns stdout, stderr and the exit code.
func (p *project) run(d time.Duration, extraEnv []string, args ...string) (string, string, int) {
	p.t.Helper()
	pr := p.start(extraEnv, args...)
	code := pr.wait(p.t, d)
	return pr.stdout.String(), pr.stderr.String(), code
}

// mustRun is run that fails the test unless the command exits 0.
func (p *project) mustRun(d time.Duration, extraEnv []string, args ...string) (string, string) {
	p.t.Helper()
	out, errOut, code := p.run(d, extraEnv, args...)
	if code != 0 {
		p.t.Fatalf("slipway %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out, errOut
}

// serve starts `slipway serve` on the router address and waits until it serves.
func (p *project) serve(addr string) *proc {
	p.t.Helper()
	pr := p.start(nil, "serve", "-C", p.dir, "--http", addr)
	pr.waitOutput(p.t, true, regexp.MustCompile(`slipway serve: router on http://`), 60*time.Second)
	return pr
}

// stopServe ends a serve with SIGINT, as Ctrl-C does, and expects exit 0.
func (p *project) stopServe(pr *proc) {
	p.t.Helper()
	pr.cmd.Process.Signal(os.Interrupt)
	if code := pr.wait(p.t, 30*time.Second); code != 0 {
		p.t.Errorf("%s exited %d after SIGINT\nstderr:\n%s", pr.name, code, pr.stderr)
	}
}

// deploy runs `slipway deploy --store-id store` to success and returns its output.
func (p *project) deploy(store string, extraEnv ...string) (string, string) {
	p.t.Helper()
	return p.mustRun(3*time.Minute, extraEnv, "deploy", "-C", p.dir, "--store-id", store)
}

// cleanup kills what a test left running: its slipway commands first, then
// the processes they started (instances and hooks), by pid.
func (p *project) cleanup() {
	p.mu.Lock()
	procs := p.procs
	p.mu.Unlock()
	for _, pr := range procs {
		if !pr.exited() {
			pr.cmd.Process.Signal(syscall.SIGKILL)
			<-pr.done
		}
	}
	for range 3 {
		left := p.ownedProcs()
		if len(left) == 0 {
			return
		}
		for _, hp := range left {
			if hp.PGID == hp.PID {
				syscall.Kill(-hp.PID, syscall.SIGKILL)
			}
			syscall.Kill(hp.PID, syscall.SIGKILL)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// release is the part of a `slipway releases --json` entry the tests read.
type release struct {
	ID     string `json:"id"`
	Store  string `json:"store"`
	Commit string `json:"commit"`
	Kind   string `json:"kind"`
	Status string `json:"status"`
	Stage  string `json:"stage"`
	Error  string `json:"error"`
	Stages []struct {
		Name     string `json:"name"`
		Status   string `json:"status"`
		ExitCode int    `json:"exitCode"`
		Output   string `json:"output"`
	} `json:"stages"`
	FinishedAt *time.Time `json:"finishedAt"`
}

func (r *release) stage(name string) (status, output string, ok bool) {
	for _, s := range r.Stages {
		if s.Name == name {
			return s.Status, s.Output, true
		}
	}
	return "", "", false
}

// releases returns the store's releases, newest first, and the raw JSON.
func (p *project) releases(store string) ([]*release, string) {
	p.t.Helper()
	out, _ := p.mustRun(30*time.Second, nil, "releases", "-C", p.dir, "--store-id", store, "--json")
	var rs []*release
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		p.t.Fatalf("slipway releases --json: %v\n%s", err, out)
	}
	return rs, out
}

// releaseOf returns the newest release of a commit.
func (p *project) releaseOf(store, commit string) *release {
	p.t.Helper()
	rs, raw := p.releases(store)
	for _, r := range rs {
		if r.Commit == commit {
			return r
		}
	}
	p.t.Fatalf("no release of commit %s for %s:\n%s", commit, store, raw)
	return nil
}

func freeAddr(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
}

// httpClient dials 127.0.0.1 for every *.localhost host (Go's resolver does
// not resolve them here) and keeps the Host header as the URL's.
var httpClient = &http.Client{
	Timeout: 10 * time.Second,
	Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if host == "localhost" || strings.HasSuffix(host, ".localhost") {
				addr = net.JoinHostPort("127.0.0.1", port)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	},
}

// get fetches a URL and returns the status code and body.
func get(t *testing.T, rawURL string) (int, string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("parsing %q: %v", rawURL, err)
	}
	resp, err := httpClient.Get(u.String())
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", rawURL, err)
	}
	return resp.StatusCode, string(b)
}

// appInfo is what the example's /api/info answers.
type appInfo struct {
	Store   string `json:"store"`
	App     string `json:"app"`
	Release string `json:"release"`
}

// info GETs http://<store>.localhost:<port>/api/info through the router.
func info(t *testing.T, routerAddr, store string) appInfo {
	t.Helper()
	_, port, _ := net.SplitHostPort(routerAddr)
	u := "http://" + store + ".localhost:" + port + "/api/info"
	code, body := get(t, u)
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d: %s", u, code, body)
	}
	var in appInfo
	if err := json.Unmarshal([]byte(body), &in); err != nil {
		t.Fatalf("GET %s: %v\n%s", u, err, body)
	}
	return in
}

// hostProc is a live process on this host.
type hostProc struct {
	PID, PGID int
	Cmdline   string // argv joined by spaces
	Cwd       string
	Release   string // its SLIPWAY_RELEASE, if any
}

func (h hostProc) String() string {
	return fmt.Sprintf("pid %d (%q, cwd %s, release %q)", h.PID, h.Cmdline, h.Cwd, h.Release)
}

// hostProcs lists the live processes (zombies left out) that this test
// process can read.
func hostProcs() []hostProc {
	ents, _ := os.ReadDir("/proc")
	var out []hostProc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		pgid, _ := strconv.Atoi(f[2])
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		out = append(out, hostProc{PID: pid, PGID: pgid, Cmdline: strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " ")), Cwd: cwd})
	}
	return out
}

func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+string(filepath.Separator))
}

// ownedProcs lists the live processes that belong to the project's data
// dir or its composed apps: running there (the process runtime runs
// instances and hooks in the image's root filesystem under the data dir),
// naming them on their command line, or in the process group of one that
// does (what a hook or an instance started, wherever it runs). The slipway
// commands the test started are not counted. Only these processes'
// environments are read, for SLIPWAY_RELEASE.
func (p *project) ownedProcs() []hostProc {
	mine := map[int]bool{}
	p.mu.Lock()
	for _, pr := range p.procs {
		if pr.cmd.Process != nil {
			mine[pr.cmd.Process.Pid] = true
		}
	}
	p.mu.Unlock()
	all := hostProcs()
	direct := func(hp hostProc) bool {
		return !mine[hp.PID] && (within(hp.Cwd, p.data) || within(hp.Cwd, p.out) ||
			strings.Contains(hp.Cmdline, p.data) || strings.Contains(hp.Cmdline, p.out))
	}
	// Groups led by an owned process: instances and hooks lead their own.
	groups := map[int]bool{}
	for _, hp := range all {
		if direct(hp) && hp.PGID == hp.PID {
			groups[hp.PID] = true
		}
	}
	var out []hostProc
	for _, hp := range all {
		if mine[hp.PID] || !(direct(hp) || groups[hp.PGID]) {
			continue
		}
		if environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", hp.PID)); err == nil {
			// The process runtime's log keeper (it redacts and stamps the
			// instances' output, and ends after them) is not counted.
			if strings.Contains("\x00"+string(environ), "\x00SLIPWAY_PROCESS_LOGPIPE=1\x00") {
				continue
			}
			for _, kv := range strings.Split(string(environ), "\x00") {
				if v, ok := strings.CutPrefix(kv, "SLIPWAY_RELEASE="); ok {
					hp.Release = v
				}
			}
		}
		out = append(out, hp)
	}
	return out
}

// waitProc waits up to d for an owned process whose command line contains
// substr and returns it.
func (p *project) waitProc(substr string, d time.Duration) (hostProc, bool) {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, hp := range p.ownedProcs() {
			if strings.Contains(hp.Cmdline, substr) {
				return hp, true
			}
		}
	}
	return hostProc{}, false
}

// expectOnlyLive checks that the processes the data dir owns are exactly n,
// all instances of release live (no hooks, no instances of other releases).
func (p *project) expectOnlyLive(live string, n int) {
	p.t.Helper()
	procs := p.ownedProcs()
	bad := 0
	for _, hp := range procs {
		// An instance is the app's node process (argv[0] "node" or a path to it).
		argv0, _, _ := strings.Cut(hp.Cmdline, " ")
		if hp.Release != live || filepath.Base(argv0) != "node" {
			bad++
			p.t.Errorf("orphan: %s (want only instances of %s)", hp, live)
		}
	}
	if len(procs) != n || bad != 0 {
		p.t.Errorf("%d process(es) belong to the data dir, %d not instances of %s; want exactly %d instances of %s:\n%s",
			len(procs), bad, live, n, live, describe(procs))
	}
}

func describe(ps []hostProc) string {
	var b strings.Builder
	for _, hp := range ps {
		fmt.Fprintf(&b, "  %s\n", hp)
	}
	return b.String()
}
