// Command builds benchmarks Slipway's build caches on the real Next.js 15
// storefront of testdata/realapps: one store is built cold (empty state dir:
// npm ci, next build, image, publish), then one file of it changes and it is
// rebuilt with warm caches (node_modules linked from the cache, .next/cache
// kept). The peer is what a CI job without Slipway runs for the same
// composed app: plain `npm ci && next build` in a fresh copy.
//
//	go run ./bench/builds [-store next-us] [-work DIR] [-keep] [-goal 0.4]
//
// It prints each run's phases and the ratios warm/cold and warm/peer, with
// the goal (PASS/MISS). npm's download cache is ~/.npm for every side (as in
// CI), so no side pays for the network more than another.
package main

import (
	"context"
	"flag"
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

func main() {
	store := flag.String("store", "next-us", "store of testdata/realapps to build")
	work := flag.String("work", "", "working directory (default: a temp dir)")
	keep := flag.Bool("keep", false, "keep the working directory")
	goal := flag.Float64("goal", 0.4, "goal for warm rebuild / cold build")
	flag.Parse()
	if err := run(*store, *work, *keep, *goal); err != nil {
		fmt.Fprintln(os.Stderr, "bench/builds:", err)
		os.Exit(1)
	}
}

func run(store, work string, keep bool, goal float64) error {
	if work == "" {
		d, err := os.MkdirTemp("", "slipway-bench-builds-")
		if err != nil {
			return err
		}
		work = d
	}
	if !keep {
		defer os.RemoveAll(work)
	}
	home, _ := os.UserHomeDir()
	os.Setenv("npm_config_cache", filepath.Join(home, ".npm"))
	os.Setenv("NEXT_TELEMETRY_DISABLED", "1")
	nodeV, _ := exec.Command("node", "--version").Output()
	fmt.Printf("machine: %d cores, %s, node %s", runtime.NumCPU(), runtime.GOOS+"/"+runtime.GOARCH, nodeV)
	repo := filepath.Join(work, "repo")
	if err := copyRepo(repo); err != nil {
		return err
	}
	state := filepath.Join(work, "state")

	cold, err := build(repo, state, store)
	if err != nil {
		return fmt.Errorf("cold build: %w", err)
	}
	report("slipway cold (empty state dir)", cold)

	header := filepath.Join(repo, "apps/stores", store, "storefront-unified-nextjs/components/header.js")
	b, err := os.ReadFile(header)
	if err != nil {
		return err
	}
	if err := os.WriteFile(header, []byte(strings.Replace(string(b), "</h1>", " (changed)</h1>", 1)), 0o644); err != nil {
		return err
	}
	if err := git(repo, "commit", "-qam", "one file changed"); err != nil {
		return err
	}
	warm, err := build(repo, state, store)
	if err != nil {
		return fmt.Errorf("warm rebuild: %w", err)
	}
	report("slipway warm (one file changed)", warm)

	peer, err := peerBuild(filepath.Join(repo, ".out", store, "storefront-unified-nextjs"), filepath.Join(work, "peer"))
	if err != nil {
		return fmt.Errorf("peer: %w", err)
	}
	fmt.Printf("%-34s total %6.1fs  npm ci %.1fs, next build %.1fs\n", "peer: npm ci && next build", peer[0].Seconds()+peer[1].Seconds(), peer[0].Seconds(), peer[1].Seconds())

	wc := warm.total.Seconds() / cold.total.Seconds()
	wp := warm.total.Seconds() / (peer[0] + peer[1]).Seconds()
	verdict := "MISS"
	if wc <= goal {
		verdict = "PASS"
	}
	fmt.Printf("\nwarm / cold: %.2f×  (goal ≤ %.1f×: %s)\nwarm / peer: %.2f×\n", wc, goal, verdict, wp)
	return nil
}

type result struct {
	total  time.Duration
	phases []pipeline.Phase
}

func build(repo, state, store string) (*result, error) {
	cfg, err := config.Load(repo, "")
	if err != nil {
		return nil, err
	}
	l, err := registry.OpenLayout(filepath.Join(state, "images"))
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	res, err := pipeline.Build(context.Background(), pipeline.BuildOptions{Config: cfg, Stores: []string{store}, Store: pipeline.LayoutStore{Layout: l}, Log: io.Discard})
	if err != nil {
		return nil, err
	}
	r := &result{total: time.Since(t0)}
	for _, im := range res.Images {
		if im.Err != nil {
			return nil, im.Err
		}
		r.phases = append(r.phases, im.Phases...)
	}
	return r, nil
}

func report(label string, r *result) {
	var parts []string
	for _, p := range r.phases {
		parts = append(parts, fmt.Sprintf("%s %.1fs", p.Name, float64(p.Millis)/1000))
	}
	fmt.Printf("%-34s total %6.1fs  %s\n", label, r.total.Seconds(), strings.Join(parts, ", "))
}

// peerBuild copies the composed app (sources only) and runs npm ci and next build in it.
func peerBuild(composed, dir string) ([2]time.Duration, error) {
	var d [2]time.Duration
	if out, err := exec.Command("cp", "-a", composed, dir).CombinedOutput(); err != nil {
		return d, fmt.Errorf("%v: %s", err, out)
	}
	for _, junk := range []string{"node_modules", ".next", ".deploy"} {
		os.RemoveAll(filepath.Join(dir, junk))
	}
	for i, argv := range [][]string{{"npm", "ci", "--include=dev", "--no-audit", "--no-fund"}, {"npx", "next", "build"}} {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Dir = dir
		t0 := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			return d, fmt.Errorf("%v: %v: %s", argv, err, out)
		}
		d[i] = time.Since(t0)
	}
	return d, nil
}

// copyRepo copies testdata/realapps (sources only) into a fresh git repository.
func copyRepo(dst string) error {
	src, err := filepath.Abs(filepath.Join("testdata", "realapps"))
	if err != nil {
		return err
	}
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("run from the repository root: %w", err)
	}
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	for _, a := range []string{"storefront-unified-nextjs", "storefront-unified-nuxt"} {
		for _, junk := range []string{"node_modules", ".next", ".nuxt", ".output"} {
			os.RemoveAll(filepath.Join(dst, "apps", a, junk))
		}
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"commit", "-qm", "realapps"}} {
		if err := git(dst, args...); err != nil {
			return err
		}
	}
	return nil
}

func git(dir string, args ...string) error {
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.email=b@b", "-c", "user.name=bench", "-c", "commit.gpgsign=false"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %v: %v: %s", args, err, out)
	}
	return nil
}
