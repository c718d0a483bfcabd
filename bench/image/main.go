// Command image benchmarks Slipway's daemonless image build + publish
// (internal/image + internal/registry) against `docker build` + `docker push`
// of the equivalent Dockerfile, on the same base image, into the same local
// registry, for two apps: the multistore example's Next.js storefront and a
// generated ~50 MB node_modules-style app. It also times, end to end, what a
// user runs for an unchanged app: the `slipway build --store-id us` CLI
// (up to date: no build, no pack, no upload) against `docker build` +
// `docker push` of the same two apps, warm.
//
//	go run ./bench/image [-runs 3] [-cli-runs 9] [-mb 50] [-files 3500] [-seed 1] [-work DIR] [-keep] [-cli=false]
//
// It prints machine facts, every run, and a table of medians with ratios and
// goals (PASS/MISS). It exits 0 even when a goal is missed, non-zero only when
// the benchmark itself cannot run or a sanity check fails. See README.md.
package main

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"github.com/slipway-dev/slipway/internal/testenv"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-dev/slipway/internal/benchreg"
	"github.com/slipway-dev/slipway/internal/image"
	"github.com/slipway-dev/slipway/internal/registry"
)

type options struct {
	runs     int
	mb       int
	files    int
	seed     uint64
	work     string
	keep     bool
	example  string
	store    string
	app      string
	coldGoal float64
	warmGoal float64
	cli      bool
	cliRuns  int
}

func main() {
	var o options
	flag.IntVar(&o.runs, "runs", 3, "timed runs per measurement (medians are reported)")
	flag.IntVar(&o.mb, "mb", 50, "size of the generated app's .deploy, in MB (10^6 bytes)")
	flag.IntVar(&o.files, "files", 3500, "about how many files the generated app has")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the generated app")
	flag.StringVar(&o.work, "work", "", "work directory (default: a new temporary directory, removed at the end)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory")
	flag.StringVar(&o.example, "example", "examples/multistore", "the example monorepo")
	flag.StringVar(&o.store, "store", "us", "the example's store")
	flag.StringVar(&o.app, "app", "storefront-unified-nextjs", "the example's app")
	flag.Float64Var(&o.coldGoal, "cold-goal", 0.3, "goal for Slipway cold / Docker cold")
	flag.Float64Var(&o.warmGoal, "warm-goal", 0.1, "goal for Slipway unchanged rebuild / Docker warm build+push (also for unchanged `slipway build` / Docker warm, end to end)")
	flag.IntVar(&o.cliRuns, "cli-runs", 9, "timed runs of the end-to-end CLI comparison (cheap: tens of ms for slipway, under a second for docker)")
	flag.BoolVar(&o.cli, "cli", true, "also time the `slipway build` CLI end to end (unchanged app: up to date) against Docker's warm build + push of the same apps")
	flag.Parse()
	if o.runs < 1 || o.cliRuns < 1 || o.mb < 1 || o.files < 10 {
		fmt.Fprintln(os.Stderr, "bench/image: -runs, -cli-runs and -mb must be ≥ 1, -files ≥ 10")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/image: FAILED:", err)
		os.Exit(1)
	}
}

// app is one of the two apps measured.
type app struct {
	id     string
	label  string
	ctxDir string // docker build context: Dockerfile + .deploy
	deploy string // ctxDir/.deploy, what both tools pack
	files  int
	bytes  int64
	links  int

	coldS, coldD, warmS, warmD []sample
	sLayer, dLayer             int64 // compressed size of the app layer
	dPush                      pushStats
	coldReqs, warmReqs         string
}

// sample is one timed run: the total and its parts.
type sample struct {
	total time.Duration
	parts map[string]time.Duration
}

type bench struct {
	o       options
	id      string // unique per invocation: every repository and tag carries it
	reg     *benchreg.Registry
	baseRef string
	docker  *dockerCLI
	ct      *countingTransport
	created time.Time
}

func run(ctx context.Context, o options) (err error) {
	b := &bench{o: o, docker: &dockerCLI{}, ct: &countingTransport{inner: remote.DefaultTransport},
		created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	idb := make([]byte, 4)
	_, _ = rand.Read(idb)
	b.id = "bench-" + hex.EncodeToString(idb)

	if err := b.facts(ctx); err != nil {
		return err
	}

	work := o.work
	if work == "" {
		if work, err = os.MkdirTemp("", "slipway-bench-image-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	work, _ = filepath.Abs(work)
	defer func() {
		var errs []error
		errs = append(errs, b.docker.Cleanup()...)
		b.reg.Stop()
		if !o.keep && o.work == "" {
			if rerr := os.RemoveAll(work); rerr != nil {
				errs = append(errs, rerr)
			}
		} else {
			fmt.Printf("work directory kept: %s\n", work)
		}
		if cerr := errors.Join(errs...); cerr != nil {
			fmt.Fprintln(os.Stderr, "bench/image: cleanup:", cerr)
			if err == nil {
				err = cerr
			}
		}
	}()

	// 1. Registry and base image.
	t := time.Now()
	if b.reg, err = benchreg.Start(ctx, work); err != nil {
		return err
	}
	base, err := testenv.BuildNodeImage()
	if err != nil {
		return fmt.Errorf("building the base image: %w", err)
	}
	b.baseRef = b.reg.Addr + "/" + b.id + "/base:node"
	ref, err := name.ParseReference(b.baseRef, name.Insecure)
	if err != nil {
		return err
	}
	if err := remote.Write(ref, base, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("pushing the base image: %w", err)
	}
	// Docker gets the base by pulling it from the same registry, so it knows
	// where the base layers live and mounts them on push, as Slipway does.
	b.docker.track(b.baseRef)
	if _, err := b.docker.run(ctx, "pull", "-q", b.baseRef); err != nil {
		return err
	}
	baseSize := int64(0)
	if ls, err := base.Layers(); err == nil {
		for _, l := range ls {
			s, _ := l.Size()
			baseSize += s
		}
	}
	fmt.Printf("registry   docker-registry on %s (storage in %s)\n", b.reg.Addr, b.reg.Dir)
	fmt.Printf("base       %s: static busybox + host node + its libs, 2 layers, %s compressed; docker pulled it from the registry\n", b.baseRef, mb(baseSize))

	// 2. The apps' .deploy directories (not timed).
	ex := &app{id: "example", ctxDir: filepath.Join(work, "ctx", "example")}
	ex.deploy = filepath.Join(ex.ctxDir, ".deploy")
	if _, err := buildExample(ctx, o.example, o.store, o.app, work, ex.deploy); err != nil {
		return err
	}
	big := &app{id: "big", ctxDir: filepath.Join(work, "ctx", "big")}
	big.deploy = filepath.Join(big.ctxDir, ".deploy")
	gt := time.Now()
	st, err := generateBigApp(big.deploy, int64(o.mb)*1e6, o.files, o.seed)
	if err != nil {
		return fmt.Errorf("generating the big app: %w", err)
	}
	fmt.Printf("big app    generated in %s: %s\n", time.Since(gt).Round(time.Millisecond), st)
	apps := []*app{ex, big}
	for _, a := range apps {
		if err := os.WriteFile(filepath.Join(a.ctxDir, "Dockerfile"), []byte(dockerfile(b.baseRef)), 0o644); err != nil {
			return err
		}
		if a.files, a.bytes, a.links, err = treeSize(a.deploy); err != nil {
			return err
		}
	}
	ex.label = fmt.Sprintf("%s/%s (%d files, %s)", o.store, o.app, ex.files, kb(ex.bytes))
	big.label = fmt.Sprintf("generated (%d files, %s)", big.files, mb(big.bytes))
	fmt.Printf("example    %s/%s built with its own build script and collected with the next preset: %d files, %s\n", o.store, o.app, ex.files, kb(ex.bytes))
	// The floor under every docker timing: one CLI call to the daemon.
	var floor []sample
	for i := 0; i < 5; i++ {
		t0 := time.Now()
		if _, err := b.docker.run(ctx, "image", "inspect", "--format", "{{.Id}}", b.baseRef); err != nil {
			return err
		}
		floor = append(floor, sample{total: time.Since(t0)})
	}
	fmt.Printf("docker CLI floor: `docker image inspect` takes %s (median of 5); docker build + push is two such calls\n", secs(median(floor, "")))
	fmt.Printf("setup      %s\n\n", time.Since(t).Round(time.Millisecond))

	// 3. Measurements.
	for _, a := range apps {
		if err := b.measure(ctx, a); err != nil {
			return fmt.Errorf("%s: %w", a.id, err)
		}
	}

	// 4. End to end: the slipway CLI vs the docker CLI, for an unchanged app.
	var c *cliBench
	if o.cli {
		if c, err = b.prepareCLI(ctx, work); err != nil {
			return fmt.Errorf("cli: %w", err)
		}
		var names []string
		for _, a := range c.apps {
			names = append(names, fmt.Sprintf("%s (%d files, %s)", a.label, a.files, kb(a.bytes)))
		}
		fmt.Printf("[cli] slipway binary built in %s; example copied to a git repository (2 commits: the example, then image.base = %s) in %s\n",
			c.buildBin.Round(time.Millisecond), b.baseRef, c.prep.Round(time.Millisecond))
		fmt.Printf("[cli] `slipway build --store-id %s --registry %s` builds %d apps: %s\n", o.store, c.regArg, len(c.apps), strings.Join(names, ", "))
		fmt.Printf("[cli] first run (cold: compose, the apps' own builds, pack, push) took %s:\n", secs(c.cold.total))
		for _, l := range strings.Split(strings.TrimRight(c.coldSummary, "\n"), "\n") {
			fmt.Printf("[cli]   %s\n", l)
		}
		if err := b.measureCLI(ctx, c); err != nil {
			return fmt.Errorf("cli: %w", err)
		}
	}
	b.report(apps, c)
	return nil
}

func kb(n int64) string { return fmt.Sprintf("%.0f KB", float64(n)/1e3) }

// writeNonce changes one small file so that each cold run packs a layer
// neither tool has seen: otherwise Docker's push would find the layer's diff
// ID in its distribution metadata from the previous run and cross-repository
// mount it instead of compressing and uploading it.
func writeNonce(a *app, what string) error {
	return os.WriteFile(filepath.Join(a.deploy, ".bench-nonce"), []byte(what+"\n"), 0o644)
}

func (b *bench) facts(ctx context.Context) error {
	out := func(name string, args ...string) string {
		o, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		if err != nil {
			return "?"
		}
		return strings.TrimSpace(string(o))
	}
	if _, err := b.docker.run(ctx, "info", "--format", "{{.ServerVersion}}"); err != nil {
		return fmt.Errorf("docker engine not reachable (run scripts/ci/setup.sh): %w", err)
	}
	cpu := "?"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	builder := "legacy builder (DOCKER_BUILDKIT=0; no buildx plugin installed)"
	if _, err := b.docker.run(ctx, "buildx", "version"); err == nil {
		builder = "legacy builder forced with DOCKER_BUILDKIT=0 (buildx is installed but not used)"
	}
	dv, _ := b.docker.run(ctx, "version", "--format", "client {{.Client.Version}}, engine {{.Server.Version}}")
	drv, _ := b.docker.run(ctx, "info", "--format", "{{.Driver}}")
	fmt.Printf("machine    nproc %s (GOMAXPROCS %d), %s, kernel %s\n", out("nproc"), runtime.GOMAXPROCS(0), cpu, out("uname", "-r"))
	fmt.Printf("docker     %s, storage driver %s, %s\n", strings.TrimSpace(dv), strings.TrimSpace(drv), builder)
	fmt.Printf("slipway    %s, go-containerregistry remote, gzip BestSpeed\n", runtime.Version())
	fmt.Printf("registry   %s\n", firstLine(out("docker-registry", "--version")))
	fmt.Printf("load       %s (1/5/15-min load average at start; 2 cores shared with other jobs)\n", loadavg())
	fmt.Printf("runs       %d per measurement (%d for the end-to-end CLI line), medians reported; bench id %s\n", b.o.runs, b.o.cliRuns, b.id)
	return nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

// measure runs, for one app: N cold pairs (fresh repositories, a changed
// nonce each time), then primes the warm repositories and runs N unchanged
// pairs. The order of the two tools alternates between runs.
func (b *bench) measure(ctx context.Context, a *app) error {
	repo := func(tool, kind string, i int) string {
		r := b.reg.Addr + "/" + b.id + "/" + tool + "-" + a.id + "-" + kind
		if i >= 0 {
			r += fmt.Sprintf("-%d", i)
		}
		return r + ":latest"
	}
	for i := 0; i < b.o.runs; i++ {
		if err := writeNonce(a, fmt.Sprintf("%s cold %d", b.id, i)); err != nil {
			return err
		}
		var s, d sample
		var ps pushStats
		var err error
		slip := func() error { s, a.coldReqs, err = b.slipway(ctx, a, repo("slipway", "cold", i), false); return err }
		dock := func() error { d, ps, err = b.dockerRun(ctx, a, repo("docker", "cold", i), false); return err }
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
		// The app layer must really be uploaded; the base layers (and the
		// legacy builder's tiny WORKDIR layer once Docker has pushed it to
		// another repository of this registry) are mounted.
		top, err := b.docker.topDiffID(ctx, repo("docker", "cold", i))
		if err != nil {
			return err
		}
		if got := ps.ids[top[:12]]; got != "Pushed" || ps.mounted < 2 || ps.existed != 0 {
			return fmt.Errorf("docker cold push %d: expected the app layer %s uploaded and the base layers mounted; got %q for it, %s", i, top[:12], got, ps)
		}
		a.dPush = ps
		if err := b.docker.rmi(ctx, repo("docker", "cold", i)); err != nil {
			return err
		}
		a.coldS, a.coldD = append(a.coldS, s), append(a.coldD, d)
		fmt.Printf("[%s] cold %d/%d   slipway %s  |  docker %s (%s)\n", a.id, i+1, b.o.runs, s, d, ps)
	}

	// Prime (untimed): publish once, build once with the cache filled.
	if err := writeNonce(a, b.id+" warm"); err != nil {
		return err
	}
	if _, _, err := b.slipway(ctx, a, repo("slipway", "warm", -1), false); err != nil {
		return err
	}
	if _, _, err := b.dockerRun(ctx, a, repo("docker", "warm", -1), true); err != nil {
		return err
	}
	for i := 0; i < b.o.runs; i++ {
		var s, d sample
		var ps pushStats
		var reqs string
		var err error
		slip := func() error { s, reqs, err = b.slipway(ctx, a, repo("slipway", "warm", -1), true); return err }
		dock := func() error { d, ps, err = b.dockerRun(ctx, a, repo("docker", "warm", -1), true); return err }
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
		if ps.pushed != 0 || ps.mounted != 0 {
			return fmt.Errorf("docker warm push %d: expected every layer to be there already, got %s", i, ps)
		}
		a.warmS, a.warmD, a.warmReqs = append(a.warmS, s), append(a.warmD, d), reqs
		fmt.Printf("[%s] unchanged %d/%d   slipway %s  |  docker %s (%s)\n", a.id, i+1, b.o.runs, s, d, ps)
	}
	fmt.Printf("[%s] slipway registry requests, last cold run: %s\n", a.id, a.coldReqs)
	fmt.Printf("[%s] slipway registry requests, last unchanged run: %s\n", a.id, a.warmReqs)
	return b.check(ctx, a, repo("slipway", "warm", -1), repo("docker", "warm", -1))
}

// slipway times what `slipway build` does after the npm build for one app:
// resolve the base (registry manifest + config), image.Build (the diff-ID
// pass over .deploy), Publish (up-to-date check, then compress + upload the
// new layer, mount the base layers, put config and manifest).
func (b *bench) slipway(ctx context.Context, a *app, refStr string, wantUpToDate bool) (sample, string, error) {
	ref, err := name.ParseReference(refStr)
	if err != nil {
		return sample{}, "", err
	}
	var upToDate bool
	rem := registry.NewRemote(registry.WithTransport(b.ct), registry.WithProgress(func(p registry.Progress) {
		if p.UpToDate {
			upToDate = true
		}
	}))
	b.ct.reset()
	t0 := time.Now()
	base, err := image.LoadBase(ctx, b.baseRef, image.WithBaseTransport(b.ct))
	if err != nil {
		return sample{}, "", err
	}
	t1 := time.Now()
	img, err := image.Build(ctx, image.Spec{Base: base, Dir: a.deploy, WorkDir: "/var/www",
		Entrypoint: []string{"node", "server.js"}, Created: b.created})
	if err != nil {
		return sample{}, "", err
	}
	t2 := time.Now()
	if _, err := rem.Publish(ctx, ref, img); err != nil {
		return sample{}, "", err
	}
	t3 := time.Now()
	if c, ok := img.(io.Closer); ok {
		c.Close()
	}
	if upToDate != wantUpToDate {
		return sample{}, "", fmt.Errorf("slipway publish to %s: up to date = %v, expected %v", refStr, upToDate, wantUpToDate)
	}
	return sample{total: t3.Sub(t0), parts: map[string]time.Duration{
		"base": t1.Sub(t0), "build": t2.Sub(t1), "publish": t3.Sub(t2)}}, b.ct.summary(), nil
}

// dockerRun times docker build (cold: --no-cache) and docker push, each as
// the CLI command a user would run.
func (b *bench) dockerRun(ctx context.Context, a *app, tag string, cache bool) (sample, pushStats, error) {
	bt, cached, err := b.docker.build(ctx, a.ctxDir, tag, cache)
	if err != nil {
		return sample{}, pushStats{}, err
	}
	if !cache && cached != 0 {
		return sample{}, pushStats{}, fmt.Errorf("docker build --no-cache of %s used the cache (%d steps)", tag, cached)
	}
	pt, ps, err := b.docker.push(ctx, tag)
	if err != nil {
		return sample{}, pushStats{}, err
	}
	return sample{total: bt + pt, parts: map[string]time.Duration{"build": bt, "push": pt, "cached": time.Duration(cached)}}, ps, nil
}

func (s sample) String() string {
	var keys []string
	for k := range s.parts {
		if k != "cached" {
			keys = append(keys, k)
		}
	}
	order := map[string]int{"base": 0, "build": 1, "publish": 2, "push": 3}
	sort.Slice(keys, func(i, j int) bool { return order[keys[i]] < order[keys[j]] })
	var ps []string
	for _, k := range keys {
		ps = append(ps, k+" "+secs(s.parts[k]))
	}
	if c, ok := s.parts["cached"]; ok && c > 0 {
		ps = append(ps, fmt.Sprintf("%d steps cached", int(c)))
	}
	return fmt.Sprintf("%s [%s]", secs(s.total), strings.Join(ps, ", "))
}

func secs(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

func median(ss []sample, part string) time.Duration {
	var ds []time.Duration
	for _, s := range ss {
		if part == "" {
			ds = append(ds, s.total)
		} else {
			ds = append(ds, s.parts[part])
		}
	}
	slices.Sort(ds)
	n := len(ds)
	if n%2 == 1 {
		return ds[n/2]
	}
	return (ds[n/2-1] + ds[n/2]) / 2
}

// check compares the app layers the two tools pushed: the same paths, types,
// sizes, modes' executable bits and link targets under /var/www; and records
// their compressed sizes.
func (b *bench) check(ctx context.Context, a *app, sRef, dRef string) error {
	load := func(r string) (map[string]string, int64, error) {
		ref, err := name.ParseReference(r)
		if err != nil {
			return nil, 0, err
		}
		img, err := remote.Image(ref, remote.WithContext(ctx))
		if err != nil {
			return nil, 0, err
		}
		ls, err := img.Layers()
		if err != nil {
			return nil, 0, err
		}
		top := ls[len(ls)-1]
		size, err := top.Size()
		if err != nil {
			return nil, 0, err
		}
		m, err := listLayer(top)
		return m, size, err
	}
	sm, ssize, err := load(sRef)
	if err != nil {
		return fmt.Errorf("reading %s: %w", sRef, err)
	}
	dm, dsize, err := load(dRef)
	if err != nil {
		return fmt.Errorf("reading %s: %w", dRef, err)
	}
	a.sLayer, a.dLayer = ssize, dsize
	var diffs []string
	for p, v := range sm {
		if dm[p] != v {
			diffs = append(diffs, fmt.Sprintf("%s: slipway %q, docker %q", p, v, dm[p]))
		}
	}
	for p, v := range dm {
		if _, ok := sm[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: slipway -, docker %q", p, v))
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		return fmt.Errorf("the two images' app layers differ in %d entries, e.g.:\n  %s", len(diffs), strings.Join(diffs[:min(10, len(diffs))], "\n  "))
	}
	fmt.Printf("[%s] check: both app layers hold the same %d entries under /var/www; compressed: slipway %s, docker %s\n\n",
		a.id, len(sm), mb(ssize), mb(dsize))
	return nil
}

func (b *bench) report(apps []*app, c *cliBench) {
	fmt.Printf("Medians of %d runs (CLI line: %d). Packing path (first four lines): slipway = base resolve + image.Build + registry Publish, in process; docker = `docker build` + `docker push` CLI wall time.\n\n", b.o.runs, b.o.cliRuns)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(tw, "app\tmeasurement\tslipway\tdocker\tratio\tgoal\tresult\t")
	line := func(label, what string, s, d []sample, goal float64) {
		ms, md := median(s, ""), median(d, "")
		ratio := ms.Seconds() / md.Seconds()
		res := "PASS"
		if ratio > goal {
			res = "MISS"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.3f×\t≤ %.2f×\t%s\t\n", label, what, secs(ms), secs(md), ratio, goal, res)
	}
	for _, a := range apps {
		line(a.label, "cold build + push (fresh repo)", a.coldS, a.coldD, b.o.coldGoal)
		line("", "unchanged rebuild + push", a.warmS, a.warmD, b.o.warmGoal)
	}
	if c != nil {
		line(fmt.Sprintf("store %s: %d apps, CLI end to end", b.o.store, len(c.apps)),
			fmt.Sprintf("unchanged: `slipway build` vs %d× docker build + push", len(c.apps)), c.warmS, c.warmD, b.o.warmGoal)
	}
	tw.Flush()
	if c != nil {
		fmt.Printf("\nCLI end to end: slipway = one `slipway build --store-id %s --registry REG` process, wall clock (start, config, compose check, git, base resolve, fingerprints, registry HEADs; every app \"up to date\", nothing written);\n", b.o.store)
		fmt.Printf("docker = `docker build` + `docker push` of each of the same %d apps (Dockerfile: FROM the same base, WORKDIR, COPY .deploy, ENTRYPOINT), one after the other, all cached and every layer already there.\n", len(c.apps))
		fmt.Printf("Medians: docker build %s + docker push %s (summed over the apps); in the slipway process, for scale: `slipway version` %s (process start), `slipway compose --store-id %s` %s (start + config + compose check), the git commands it runs first (log + status) %s.\n",
			secs(median(c.warmD, "build")), secs(median(c.warmD, "push")), secs(median(c.version, "")), b.o.store, secs(median(c.compose, "")), secs(median(c.gitDescribe, "")))
		if !slices.ContainsFunc(c.warmS, func(s sample) bool { return s.parts == nil }) {
			var ps []string
			for _, k := range phaseOrder {
				ps = append(ps, k+" "+secs(median(c.warmS, k)))
			}
			fmt.Printf("Where the unchanged `slipway build` spends its time (medians, split at its log lines' ms timestamps): %s.\n", strings.Join(ps, ", "))
		}
		fmt.Printf("Not compared: the first `slipway build`, %s (it includes composing and both apps' own builds, which Docker's side does not have).\n", secs(c.cold.total))
	}

	fmt.Printf("\nBreakdown (medians):\n")
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(tw, "app\tmeasurement\tslipway base\tslipway image.Build\tslipway Publish\tdocker build\tdocker push\t")
	for _, a := range apps {
		for _, m := range []struct {
			what string
			s, d []sample
		}{{"cold", a.coldS, a.coldD}, {"unchanged", a.warmS, a.warmD}} {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", a.id, m.what,
				secs(median(m.s, "base")), secs(median(m.s, "build")), secs(median(m.s, "publish")),
				secs(median(m.d, "build")), secs(median(m.d, "push")))
		}
	}
	tw.Flush()
	fmt.Println()
	fmt.Printf("load average at the end: %s\n", loadavg())
	for _, a := range apps {
		fmt.Printf("%s: app layer compressed slipway %s (gzip BestSpeed), docker %s; docker cold push: %s\n", a.id, mb(a.sLayer), mb(a.dLayer), a.dPush)
	}
}

// countingTransport counts registry requests by method and kind.
type countingTransport struct {
	inner http.RoundTripper
	mu    sync.Mutex
	n     map[string]int
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	p := req.URL.Path
	kind := "other"
	switch {
	case p == "/v2/" || p == "/v2":
		kind = "/v2/ ping"
	case strings.Contains(p, "/manifests/"):
		kind = "manifest"
	case strings.Contains(p, "/blobs/uploads/"):
		kind = "blob upload"
	case strings.Contains(p, "/blobs/"):
		kind = "blob"
	}
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[req.Method+" "+req.URL.Scheme+" "+kind]++
	c.mu.Unlock()
	return c.inner.RoundTrip(req)
}

func (c *countingTransport) reset() {
	c.mu.Lock()
	c.n = nil
	c.mu.Unlock()
}

func (c *countingTransport) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ks []string
	for k := range c.n {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var out []string
	for _, k := range ks {
		out = append(out, fmt.Sprintf("%s ×%d", k, c.n[k]))
	}
	return strings.Join(out, ", ")
}

// listLayer maps each entry under var/www in a layer to its type, size,
// permissions and link target.
func listLayer(l v1.Layer) (map[string]string, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	m := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return m, nil
		}
		if err != nil {
			return nil, err
		}
		p := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/"), "/")
		if !strings.HasPrefix(p, "var/www/") {
			continue
		}
		m[p] = fmt.Sprintf("type %c size %d mode %o link %q", h.Typeflag, h.Size, h.Mode&0o7777, h.Linkname)
	}
}
