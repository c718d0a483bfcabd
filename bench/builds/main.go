// Command builds benchmarks Slipway's build caches on the real Next.js 15
// storefront of testdata/realapps, one store at a time:
//
//  1. cold: a new state dir — no node_modules, an EMPTY npm cache (npm
//     downloads every package from the npm registry), no .next/cache, no
//     image layers;
//
//  2. cold, npm cache warm (optional): another new state dir whose npm
//     download cache is the one run 1 filled — what "cold" meant before;
//
//  3. warm: one file of the store (its header override) changed and
//     committed, rebuilt with run 1's state dir: node_modules linked from
//     the build cache, .next/cache restored, unchanged layers reused;
//
//  4. peer: plain `npm ci && next build` in a fresh copy of the composed
//     app with an empty npm cache of its own (a CI job with no caches).
//
//     go run ./bench/builds [-store next-us] [-work DIR] [-keep] [-goal 0.4] [-warm-npm-cold=false] [-peer=false]
//
// It prints each run's phases (npm, next build, image, publish), where
// next build's time went (from Next's own .next/trace), and warm/cold with
// the goal (PASS/MISS).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/benchnext"
)

func main() {
	store := flag.String("store", "next-us", "store of testdata/realapps to build")
	work := flag.String("work", "", "working directory (default: a temp dir)")
	keep := flag.Bool("keep", false, "keep the working directory")
	goal := flag.Float64("goal", 0.4, "goal for warm rebuild / cold build")
	warmNPMCold := flag.Bool("warm-npm-cold", true, "also time a cold build whose npm download cache is warm")
	peer := flag.Bool("peer", true, "also time the peer: npm ci && next build with an empty npm cache")
	flag.Parse()
	if err := run(*store, *work, *keep, *goal, *warmNPMCold, *peer); err != nil {
		fmt.Fprintln(os.Stderr, "bench/builds:", err)
		os.Exit(1)
	}
}

func run(store, work string, keep bool, goal float64, warmNPMCold, peer bool) error {
	work, done, err := benchnext.Begin("builds", work, keep)
	if err != nil {
		return err
	}
	defer done()
	fmt.Printf("work dir %s; build logs in %s/*.log\n\n", work, work)
	repo := filepath.Join(work, "repo")
	if err := benchnext.CopyRepo(repo, nil); err != nil {
		return err
	}
	app := filepath.Join(repo, ".out", store, benchnext.NextApp)
	state := filepath.Join(work, "state")
	npmCache := filepath.Join(state, "cache", "pm", "npm")

	cold, err := build(work, "cold", repo, state, store, app)
	if err != nil {
		return err
	}
	report("slipway cold (new state dir, empty npm cache)", cold, app)
	fmt.Printf("  npm cache filled by the cold build: %.0f MB (%s)\n", float64(benchnext.DirSize(npmCache))/1e6, npmCache)

	if warmNPMCold {
		// A second cold state dir whose npm cache is run 1's, as the bench
		// measured "cold" before: node_modules, .next/cache and layers are new.
		os.Setenv("npm_config_cache", npmCache)
		c2, err := build(work, "cold-warm-npm", repo, filepath.Join(work, "state-warm-npm"), store, app)
		os.Unsetenv("npm_config_cache")
		if err != nil {
			return err
		}
		report("slipway cold, npm cache warm", c2, app)
		warmNPMColdTotal = c2.Total
	}

	if err := changeOneFile(repo, store); err != nil {
		return err
	}
	warm, err := build(work, "warm", repo, state, store, app)
	if err != nil {
		return err
	}
	report("slipway warm (one file changed)", warm, app)

	var peerTotal time.Duration
	if peer {
		npmCI, nextBuild, err := benchnext.Peer(app, filepath.Join(work, "peer"), filepath.Join(work, "peer-npm-cache"))
		if err != nil {
			return fmt.Errorf("peer: %w", err)
		}
		peerTotal = npmCI + nextBuild
		fmt.Printf("%-46s total %6.1fs  npm ci %.1fs, next build %.1fs\n", "peer: npm ci && next build (empty npm cache)", peerTotal.Seconds(), npmCI.Seconds(), nextBuild.Seconds())
		if s := benchnext.NextSpans(filepath.Join(work, "peer")); s != "" {
			fmt.Printf("%46s next build: %s\n", "", s)
		}
	}

	wc := warm.Total.Seconds() / cold.Total.Seconds()
	verdict := "MISS"
	if wc <= goal {
		verdict = "PASS"
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\nload average at end: %s", load)
	fmt.Printf("warm / cold: %.2f×  (goal ≤ %.1f×: %s)\n", wc, goal, verdict)
	if warmNPMColdTotal > 0 {
		fmt.Printf("warm / cold with a warm npm cache: %.2f×\n", warm.Total.Seconds()/warmNPMColdTotal.Seconds())
	}
	if peerTotal > 0 {
		fmt.Printf("warm / peer: %.2f×\n", warm.Total.Seconds()/peerTotal.Seconds())
	}
	return nil
}

var warmNPMColdTotal time.Duration

// build runs one Slipway build of store, its log in work/<name>.log.
func build(work, name, repo, state, store, app string) (*benchnext.Result, error) {
	log, err := os.Create(filepath.Join(work, name+".log"))
	if err != nil {
		return nil, err
	}
	defer log.Close()
	r, err := benchnext.Build(repo, state, []string{store}, log)
	if err != nil {
		return nil, fmt.Errorf("%s build (log %s): %w", name, log.Name(), err)
	}
	return r, nil
}

func report(label string, r *benchnext.Result, app string) {
	for _, im := range r.Images {
		fmt.Printf("%-46s total %6.1fs  %s\n", label, r.Total.Seconds(), benchnext.Phases(im))
	}
	if s := benchnext.NextSpans(app); s != "" {
		fmt.Printf("%46s next build: %s\n", "", s)
	}
}

// changeOneFile edits the store's header override and commits it.
func changeOneFile(repo, store string) error {
	header := filepath.Join(repo, "apps/stores", store, benchnext.NextApp, "components/header.js")
	b, err := os.ReadFile(header)
	if err != nil {
		return err
	}
	if err := os.WriteFile(header, []byte(strings.Replace(string(b), "</h1>", " (changed)</h1>", 1)), 0o644); err != nil {
		return err
	}
	return benchnext.Git(repo, "commit", "-qam", "one file changed")
}
