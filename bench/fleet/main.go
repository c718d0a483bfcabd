// Command fleet benchmarks Slipway's fleet operations on the process runtime,
// all in one run on a generated monorepo (Alokai layout: a template store and
// S child stores, each with a Next-style storefront and a middleware, both
// small Node.js servers):
//
//   - `slipway up` of every store, from exec until it prints "serving on"
//     (compose, build, pack, publish, deploy, gate). Goal: 30 stores ≤ 8 s.
//
//   - against that running serve: one store's `deploy --deploy-only`, then
//     `deploy --all --deploy-only --wave W` of every store. Goal: ≤ 3× the
//     one store's deploy.
//
//   - serve's peak RSS over all of it. Goal: ≤ 150 MB.
//
//   - the peer: the same Node servers started straight from a shell's view
//     (exec node, poll /healthz, stop the old one), in the same waves, with
//     no Slipway at all: the floor this machine sets for the rollout.
//
//     go run ./bench/fleet                 # 30 stores, waves of 10, 2 runs
//     go run ./bench/fleet -stores 10 -wave 5 -runs 3
//     go run ./bench/fleet -profile /tmp/fleet.pprof   # serve's CPU profile of run 1
//     go run ./bench/fleet -bin /tmp/old-slipway       # another build, to compare
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

type options struct {
	stores, wave, runs, one int
	keep, verbose           bool
	profile, bin            string
}

func main() {
	var o options
	flag.IntVar(&o.stores, "stores", 30, "stores in the generated monorepo")
	flag.IntVar(&o.wave, "wave", 10, "stores per wave")
	flag.IntVar(&o.runs, "runs", 2, "runs (each on a fresh state dir)")
	flag.IntVar(&o.one, "one", 3, "one-store deploys per run (the median counts)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp dir")
	flag.BoolVar(&o.verbose, "v", false, "print the rollout's output")
	flag.StringVar(&o.profile, "profile", "", "write serve's CPU profile of run 1 to this file")
	flag.StringVar(&o.bin, "bin", "", "use this slipway binary instead of building the module's (to compare two builds)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

// result is one run's figures.
type result struct {
	up, one, waves, floor time.Duration
	rssMB                 float64
}

func run(o options) error {
	dir, err := os.MkdirTemp("", "slipway-fleet-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Println("temp dir", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	bin := o.bin
	if bin == "" {
		bin = filepath.Join(dir, "slipway")
		if err := sh(root, "go", "build", "-o", bin, "./cmd/slipway"); err != nil {
			return err
		}
	}
	repo := filepath.Join(dir, "repo")
	if err := writeFleet(repo, o.stores); err != nil {
		return err
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"-c", "user.name=bench", "-c", "user.email=bench@localhost", "-c", "commit.gpgsign=false", "commit", "-q", "-m", "fleet"}} {
		if err := sh(repo, "git", args...); err != nil {
			return err
		}
	}
	fmt.Printf("fleet: %d stores × 2 Node apps, process runtime, waves of %d; load average %s\n", o.stores, o.wave, loadavg())
	var rs []result
	for i := range o.runs {
		prof := ""
		if i == 0 {
			prof = o.profile
		}
		r, err := runOnce(bin, repo, filepath.Join(dir, fmt.Sprintf("state-%d", i)), o, prof)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		rs = append(rs, r)
		fmt.Printf("run %d: up %s | one store %s | %d stores in waves of %d %s = %.1f× one store | node floor %s | serve peak RSS %.1f MB | load %s\n",
			i+1, ms(r.up), ms(r.one), o.stores, o.wave, ms(r.waves), ratio(r.waves, r.one), ms(r.floor), r.rssMB, loadavg())
	}
	summarise(rs, o)
	return nil
}

// runOnce brings the fleet up on a fresh state dir, then times one store's
// deploy and the rollout against that serve, then the Node floor.
func runOnce(bin, repo, state string, o options, profile string) (result, error) {
	var r result
	up, err := startUp(bin, repo, state, profile)
	if err != nil {
		return r, err
	}
	defer up.stop()
	r.up = up.took
	cli := func(args ...string) (string, time.Duration, error) {
		cmd := exec.Command(bin, append(args, "-C", repo, "--state-dir", state)...)
		cmd.Env = cleanEnv()
		t := time.Now()
		out, err := cmd.CombinedOutput()
		return string(out), time.Since(t), err
	}
	var ones []time.Duration
	for range o.one {
		out, d, err := cli("deploy", "--store-id", "s01", "--deploy-only")
		if err != nil {
			return r, fmt.Errorf("deploy-only of one store: %v\n%s", err, lastLines(out, 20))
		}
		ones = append(ones, d)
	}
	r.one = median(ones)
	out, d, err := cli("deploy", "--all", "--deploy-only", "--wave", fmt.Sprint(o.wave))
	if err != nil {
		return r, fmt.Errorf("deploy --all --wave: %v\n%s", err, lastLines(out, 40))
	}
	if n := strings.Count(out, " live "); n < o.stores {
		return r, fmt.Errorf("deploy --all --wave: %d stores live, want %d\n%s", n, o.stores, lastLines(out, 40))
	}
	if o.verbose {
		fmt.Println(out)
	}
	r.waves = d
	r.rssMB = up.peakRSS()
	up.stop()
	if r.floor, err = nodeFloor(repo, o.stores, o.wave); err != nil {
		return r, fmt.Errorf("node floor: %w", err)
	}
	return r, nil
}

func summarise(rs []result, o options) {
	pick := func(f func(result) time.Duration) []time.Duration {
		var out []time.Duration
		for _, r := range rs {
			out = append(out, f(r))
		}
		return out
	}
	ups, ones, waves, floors := pick(func(r result) time.Duration { return r.up }), pick(func(r result) time.Duration { return r.one }),
		pick(func(r result) time.Duration { return r.waves }), pick(func(r result) time.Duration { return r.floor })
	var ratios []float64
	rss := 0.0
	for _, r := range rs {
		ratios = append(ratios, ratio(r.waves, r.one))
		rss = max(rss, r.rssMB)
	}
	fmt.Printf("\nup of %d stores: %s (goal ≤ 8 s for 30: %s)\n", o.stores, span(ups), verdict(slices.Min(ups) <= 8*time.Second))
	fmt.Printf("one store's deploy-only: %s\n", span(ones))
	fmt.Printf("deploy --all --deploy-only --wave %d: %s = %.1f–%.1f× one store (goal ≤ 3×: %s)\n", o.wave, span(waves), slices.Min(ratios), slices.Max(ratios), verdict(slices.Min(ratios) <= 3))
	fmt.Printf("peer, the same Node servers started in the same waves without Slipway: %s; Slipway's rollout is %.1f–%.1f× that floor\n",
		span(floors), minRatio(waves, floors), maxRatio(waves, floors))
	fmt.Printf("serve peak RSS: %.1f MB (goal ≤ 150 MB: %s)\n", rss, verdict(rss <= 150))
}

func verdict(ok bool) string {
	if ok {
		return "OK"
	}
	return "MISS"
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

func minRatio(a, b []time.Duration) float64 {
	m := ratio(a[0], b[0])
	for i := range a {
		m = min(m, ratio(a[i], b[i]))
	}
	return m
}

func maxRatio(a, b []time.Duration) float64 {
	m := ratio(a[0], b[0])
	for i := range a {
		m = max(m, ratio(a[i], b[i]))
	}
	return m
}

// span prints the range of ds (and the median with three or more).
func span(ds []time.Duration) string {
	lo, hi := slices.Min(ds), slices.Max(ds)
	if len(ds) == 1 || lo == hi {
		return ms(lo)
	}
	if len(ds) >= 3 {
		return fmt.Sprintf("%s–%s (median %s)", ms(lo), ms(hi), ms(median(ds)))
	}
	return ms(lo) + "–" + ms(hi)
}

func ms(d time.Duration) string {
	if d >= time.Second {
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run inside the slipway module (go run ./bench/fleet)")
	}
	return filepath.Dir(gomod), nil
}

func sh(dir, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, cleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLIPWAY_") {
			env = append(env, kv)
		}
	}
	return env
}
