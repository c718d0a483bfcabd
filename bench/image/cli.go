package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-dev/slipway/internal/build"
	"github.com/slipway-dev/slipway/internal/image"
)

// The end-to-end comparison: what a user runs for an app that did not
// change. For Slipway that is the `slipway build` command, which composes,
// fingerprints each app (composed files + build settings + base digest) and,
// when the registry already has an image for that fingerprint, neither builds
// nor packs nor uploads anything ("up to date"). For Docker it is `docker
// build` + `docker push` of each app, with the build cache and every layer
// already in the registry.

// cliBench is the state of the end-to-end measurement.
type cliBench struct {
	bin    string   // the slipway binary built from ./cmd/slipway
	repo   string   // a git repository holding a copy of the example
	regArg string   // --registry
	apps   []*app   // one per app `slipway build --store-id STORE` builds; ctxDir is Docker's context
	refs   []string // the image Slipway pushed for each app (same order)

	cold           sample // the first `slipway build`: compose, the apps' own builds, pack, push
	coldSummary    string
	warmS, warmD   []sample
	warmLog        string   // stderr of the last unchanged run
	warmReqs       string   // registry requests of an unchanged run, through a counting proxy
	baseReqs       string   // registry requests of resolving image.base, as the CLI does
	version        []sample // `slipway version`: the floor of any slipway process
	compose        []sample // `slipway compose --store-id STORE`: start + config + compose check
	gitDescribe    []sample // the two git commands `slipway build` runs to name the commit
	buildBin, prep time.Duration
}

// cliEnv is the environment the CLI runs with: this process's, minus
// SLIPWAY_* (every flag can be set as SLIPWAY_<FLAG>; the bench sets its own).
func cliEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLIPWAY_") {
			env = append(env, kv)
		}
	}
	return env
}

// cliRow is one line of the summary table `slipway build` prints.
type cliRow struct{ store, app, result, ref string }

// parseSummary reads the STORE APP RESULT IMAGE TIME table from stdout.
func parseSummary(out string) ([]cliRow, error) {
	var rows []cliRow
	seenHeader := false
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if f[0] == "STORE" && len(f) >= 3 && f[1] == "APP" {
			seenHeader = true
			continue
		}
		if !seenHeader || len(f) < 4 {
			continue
		}
		r := cliRow{store: f[0], app: f[1], result: f[2]}
		img := f[3]
		if f[2] == "up" && len(f) >= 6 && f[3] == "to" && f[4] == "date" {
			r.result, img = "up to date", f[5]
		}
		r.ref, _, _ = strings.Cut(img, "@")
		rows = append(rows, r)
	}
	if !seenHeader || len(rows) == 0 {
		return nil, fmt.Errorf("no summary table in the output of slipway build:\n%s", out)
	}
	return rows, nil
}

var phaseOrder = []string{"start", "first app", "other apps", "exit"}

func phases(s sample) string {
	if s.parts == nil {
		return "no log timestamps"
	}
	var out []string
	for _, k := range phaseOrder {
		out = append(out, k+" "+secs(s.parts[k]))
	}
	return strings.Join(out, ", ")
}

// timeGitDescribe times the git commands gitfs.Describe runs for a clean
// tree (`git log -1`, `git status`), as `slipway build` does before anything else.
func timeGitDescribe(ctx context.Context, dir string) (sample, error) {
	t0 := time.Now()
	for _, args := range [][]string{{"log", "-1", "--format=%H %ct"}, {"status", "--porcelain=v1", "-z", "--untracked-files=all", "--", "."}} {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return sample{}, fmt.Errorf("git %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	return sample{total: time.Since(t0)}, nil
}

// timeCmd runs the slipway binary with args in the example repository and
// returns its wall time.
func timeCmd(ctx context.Context, c *cliBench, args ...string) (sample, error) {
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Dir = c.repo
	cmd.Env = cliEnv()
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	el := time.Since(t0)
	if err != nil {
		return sample{}, fmt.Errorf("slipway %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return sample{total: el}, nil
}

// runCLI runs `slipway build --store-id STORE --registry REG` in the example
// repository and times it as a user would see it: from before the process
// starts to after it exits. Every row of the summary must say want.
func (b *bench) runCLI(ctx context.Context, c *cliBench, regArg, want string) (sample, []cliRow, string, string, error) {
	cmd := exec.CommandContext(ctx, c.bin, "build", "--store-id", b.o.store, "--registry", regArg)
	cmd.Dir = c.repo
	cmd.Env = cliEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := cmd.Run()
	t1 := time.Now()
	if err != nil {
		return sample{}, nil, "", "", fmt.Errorf("slipway build: %w\n%s%s", err, tail(stderr.String(), 30), stdout.String())
	}
	rows, err := parseSummary(stdout.String())
	if err != nil {
		return sample{}, nil, "", "", err
	}
	for _, r := range rows {
		if r.result != want {
			return sample{}, nil, "", "", fmt.Errorf("slipway build: %s/%s is %q, expected %q\n%s%s", r.store, r.app, r.result, want, tail(stderr.String(), 30), stdout.String())
		}
	}
	return sample{total: t1.Sub(t0), parts: logPhases(t0, t1, stderr.String())}, rows, stdout.String(), stderr.String(), nil
}

// logPhases splits one run's wall time at the UTC millisecond timestamps of
// its log lines: "start" until "building N store(s)" (process start, flags,
// config, opening the registry client), "first app" until the first "up to
// date" line (git, compose check, base resolve, the first app's fingerprint
// check), "other apps" until the last one, "exit" until the process is gone
// (summary table, exit). Timestamps are whole milliseconds; nil when the log
// does not have them.
func logPhases(t0, t1 time.Time, log string) map[string]time.Duration {
	var building, first, last time.Time
	for _, l := range strings.Split(log, "\n") {
		ts, msg, ok := strings.Cut(l, " ")
		if !ok {
			continue
		}
		t, err := time.Parse("15:04:05.000", ts)
		if err != nil {
			continue
		}
		u := t0.UTC()
		at := time.Date(u.Year(), u.Month(), u.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
		switch {
		case strings.HasPrefix(msg, "building "):
			building = at
		case strings.Contains(msg, "] up to date"):
			if first.IsZero() {
				first = at
			}
			last = at
		}
	}
	if building.IsZero() || first.IsZero() || building.Before(t0.Truncate(time.Millisecond)) || t1.Before(last) {
		return nil
	}
	return map[string]time.Duration{"start": building.Sub(t0), "first app": first.Sub(building),
		"other apps": last.Sub(first), "exit": t1.Sub(last)}
}

// git runs git in dir with a fixed identity and no hooks or signing.
func git(ctx context.Context, dir string, args ...string) error {
	full := append([]string{"-c", "user.name=slipway bench", "-c", "user.email=bench@localhost",
		"-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null"}, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("git %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// copyExample copies the example's sources, without what its .gitignore
// names (build output, node_modules, .out, .slipway) or a .git.
func copyExample(src, dst string) error {
	skip := map[string]bool{".git": true, "node_modules": true, ".out": true, ".slipway": true,
		".next": true, ".output": true, "dist": true}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != src && skip[d.Name()] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(to, data, info.Mode().Perm())
		default:
			return fmt.Errorf("%s: unsupported file type %s", p, info.Mode().Type())
		}
	})
}

// prepareCLI builds the CLI, makes the example repository (two commits: the
// example, then image.base), runs the first `slipway build` (timed once, as
// "cold CLI") and makes Docker's contexts from the .deploy directories that
// run produced, with the WORKDIR and ENTRYPOINT of the images Slipway pushed.
// Then it builds and pushes each Docker context once, so Docker's cache and
// the registry are warm.
func (b *bench) prepareCLI(ctx context.Context, work string) (*cliBench, error) {
	c := &cliBench{bin: filepath.Join(work, "bin", "slipway"), repo: filepath.Join(work, "cli", "multistore"),
		// The bench id as a registry prefix keeps these repositories apart
		// from any earlier run's in a reused -work directory.
		regArg: b.reg.Addr + "/" + b.id}
	t := time.Now()
	gb := exec.CommandContext(ctx, "go", "build", "-o", c.bin, "./cmd/slipway")
	if out, err := gb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/slipway: %w\n%s", err, out)
	}
	c.buildBin = time.Since(t)

	t = time.Now()
	if err := copyExample(b.o.example, c.repo); err != nil {
		return nil, fmt.Errorf("copying %s: %w", b.o.example, err)
	}
	if err := git(ctx, c.repo, "init", "-q"); err != nil {
		return nil, err
	}
	if err := git(ctx, c.repo, "add", "-A"); err != nil {
		return nil, err
	}
	if err := git(ctx, c.repo, "commit", "-q", "-m", "example"); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(c.repo, "slipway.yaml")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("the bench needs %s/slipway.yaml: %w", b.o.example, err)
	}
	if bytes.Contains(cfg, []byte("\nimage:")) {
		return nil, fmt.Errorf("%s already sets image:; the bench appends its own", cfgPath)
	}
	cfg = append(bytes.TrimRight(cfg, "\n"), []byte(fmt.Sprintf("\n\n# bench/image: the base both tools build on, in the bench's registry.\nimage:\n  base: %s\n", b.baseRef))...)
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		return nil, err
	}
	if err := git(ctx, c.repo, "commit", "-q", "-am", "image.base: the bench's base"); err != nil {
		return nil, err
	}
	c.prep = time.Since(t)

	s, rows, out, _, err := b.runCLI(ctx, c, c.regArg, "built")
	if err != nil {
		return nil, fmt.Errorf("first slipway build: %w", err)
	}
	c.cold, c.coldSummary = s, out
	// Each app must now be clean in git terms (the build wrote only ignored files).
	st := exec.CommandContext(ctx, "git", "status", "--porcelain")
	st.Dir = c.repo
	if o, err := st.Output(); err != nil || len(bytes.TrimSpace(o)) != 0 {
		return nil, fmt.Errorf("the example repository is not clean after slipway build (%v):\n%s", err, o)
	}

	for _, r := range rows {
		ref, err := name.ParseReference(r.ref)
		if err != nil {
			return nil, err
		}
		img, err := remote.Image(ref, remote.WithContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", r.ref, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		a := &app{id: "cli-" + r.app, label: r.app, ctxDir: filepath.Join(work, "ctx", "cli-"+r.app)}
		a.deploy = filepath.Join(a.ctxDir, ".deploy")
		src := filepath.Join(c.repo, ".out", r.store, r.app, build.DeployDir)
		if err := copyTree(src, a.deploy); err != nil {
			return nil, fmt.Errorf("copying %s: %w", src, err)
		}
		if a.files, a.bytes, a.links, err = treeSize(a.deploy); err != nil {
			return nil, err
		}
		df, err := dockerfileFor(b.baseRef, cf.Config.WorkingDir, cf.Config.Entrypoint)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(a.ctxDir, "Dockerfile"), []byte(df), 0o644); err != nil {
			return nil, err
		}
		c.apps, c.refs = append(c.apps, a), append(c.refs, r.ref)
	}
	// Prime Docker (untimed): the first build fills the cache, the first push the repository.
	for _, a := range c.apps {
		if _, _, err := b.dockerRun(ctx, a, b.cliDockerRepo(a), true); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (b *bench) cliDockerRepo(a *app) string {
	return b.reg.Addr + "/" + b.id + "/docker-" + a.id + ":latest"
}

// dockerfileFor is the Dockerfile equivalent of a Slipway image: the same
// base, .deploy at its WORKDIR, its ENTRYPOINT.
func dockerfileFor(base, workdir string, entry []string) (string, error) {
	if workdir == "" || len(entry) == 0 {
		return "", fmt.Errorf("slipway's image has no workdir (%q) or entrypoint (%q)", workdir, entry)
	}
	e, err := json.Marshal(entry)
	if err != nil {
		return "", err
	}
	return "FROM " + base + "\nWORKDIR " + workdir + "\nCOPY .deploy/ ./\nENTRYPOINT " + string(e) + "\n", nil
}

// measureCLI times N unchanged `slipway build` runs against N rounds of
// Docker's warm build + push of the same apps, one after the other, the
// order of the two tools alternating. Then one more unchanged run goes
// through a counting proxy to list its registry requests (it must write
// nothing), and the app layers of both tools' images are compared.
func (b *bench) measureCLI(ctx context.Context, c *cliBench) error {
	for i := 0; i < b.o.cliRuns; i++ {
		var s, d sample
		var log string
		slip := func() (err error) {
			s, _, _, log, err = b.runCLI(ctx, c, c.regArg, "up to date")
			return err
		}
		dock := func() error {
			d = sample{parts: map[string]time.Duration{}}
			for _, a := range c.apps {
				ds, ps, err := b.dockerRun(ctx, a, b.cliDockerRepo(a), true)
				if err != nil {
					return err
				}
				if ps.pushed != 0 || ps.mounted != 0 {
					return fmt.Errorf("docker warm push of %s: expected every layer to be there already, got %s", a.id, ps)
				}
				if n := int(ds.parts["cached"]); n < 3 {
					return fmt.Errorf("docker warm build of %s: expected every step cached, %d were", a.id, n)
				}
				d.total += ds.total
				d.parts["build"] += ds.parts["build"]
				d.parts["push"] += ds.parts["push"]
				d.parts["cached"] += ds.parts["cached"]
			}
			return nil
		}
		first, second := slip, dock
		if i%2 == 1 {
			first, second = dock, slip
		}
		if err := first(); err != nil {
			return err
		}
		if err := second(); err != nil {
			return err
		}
		// Where the slipway process's time goes (not part of the comparison).
		v, err := timeCmd(ctx, c, "version")
		if err != nil {
			return err
		}
		cp, err := timeCmd(ctx, c, "compose", "--store-id", b.o.store)
		if err != nil {
			return err
		}
		g, err := timeGitDescribe(ctx, c.repo)
		if err != nil {
			return err
		}
		c.version, c.compose, c.gitDescribe = append(c.version, v), append(c.compose, cp), append(c.gitDescribe, g)
		c.warmS, c.warmD, c.warmLog = append(c.warmS, s), append(c.warmD, d), log
		fmt.Printf("[cli] unchanged %d/%d   slipway build %s [%s]  |  docker ×%d %s   (slipway version %s, slipway compose --store-id %s %s, git log + status %s)\n",
			i+1, b.o.cliRuns, secs(s.total), phases(s), len(c.apps), d, secs(v.total), b.o.store, secs(cp.total), secs(g.total))
	}

	// What resolving slipway.yaml's image.base costs in requests (the CLI
	// does exactly this once per run: LoadBase, then the manifest digest).
	ct := &countingTransport{inner: remote.DefaultTransport}
	base, err := image.LoadBase(ctx, b.baseRef, image.WithBaseTransport(ct))
	if err != nil {
		return err
	}
	if _, err := base.Digest(); err != nil {
		return err
	}
	c.baseReqs = ct.summary()

	// One more unchanged run, untimed, with --registry pointing at a counting
	// proxy in front of the same registry (same storage: still up to date).
	// The base is resolved from slipway.yaml's reference, directly.
	p, err := startCountingProxy(b.reg.Addr)
	if err != nil {
		return err
	}
	defer p.close()
	if _, _, _, _, err := b.runCLI(ctx, c, p.addr+"/"+b.id, "up to date"); err != nil {
		return fmt.Errorf("unchanged slipway build through the counting proxy: %w", err)
	}
	c.warmReqs = p.ct.summary()
	p.ct.mu.Lock()
	for k, n := range p.ct.n {
		if m, _, _ := strings.Cut(k, " "); m != "GET" && m != "HEAD" && !strings.HasPrefix(k, "TLS ") {
			p.ct.mu.Unlock()
			return fmt.Errorf("unchanged slipway build wrote to the registry: %s ×%d (all: %s)", k, n, c.warmReqs)
		}
	}
	p.ct.mu.Unlock()
	fmt.Printf("[cli] registry requests of an unchanged `slipway build`: resolving image.base (direct) %s; checking the apps (via a counting proxy) %s\n", c.baseReqs, c.warmReqs)
	for _, l := range strings.Split(strings.TrimSpace(c.warmLog), "\n") {
		fmt.Printf("[cli]   stderr: %s\n", l)
	}
	for i, a := range c.apps {
		if err := b.check(ctx, a, c.refs[i], b.cliDockerRepo(a)); err != nil {
			return fmt.Errorf("%s: %w", a.id, err)
		}
	}
	return nil
}

// countingProxy is a reverse proxy on loopback that counts the requests it
// forwards to the registry.
type countingProxy struct {
	addr string
	srv  *http.Server
	ct   *countingTransport
}

func startCountingProxy(target string) (*countingProxy, error) {
	u, err := url.Parse("http://" + target)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{addr: l.Addr().String(), ct: &countingTransport{inner: http.DefaultTransport}}
	l = &tlsSniffer{Listener: l, ct: p.ct}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(u) },
		Transport: p.ct,
	}
	p.srv = &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(l) }()
	return p, nil
}

func (p *countingProxy) close() { _ = p.srv.Close() }

// tlsSniffer counts connections that open with a TLS handshake record: a
// client trying HTTPS first (this proxy speaks plain HTTP only, so it fails
// and the client falls back to HTTP). The transport never sees those.
type tlsSniffer struct {
	net.Listener
	ct *countingTransport
}

func (l *tlsSniffer) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sniffConn{Conn: conn, ct: l.ct}, nil
}

type sniffConn struct {
	net.Conn
	ct   *countingTransport
	seen bool
}

func (c *sniffConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.seen && n > 0 {
		c.seen = true
		if p[0] == 0x16 { // TLS handshake record
			c.ct.mu.Lock()
			if c.ct.n == nil {
				c.ct.n = map[string]int{}
			}
			c.ct.n["TLS connection attempt (refused)"]++
			c.ct.mu.Unlock()
		}
	}
	return n, err
}
