// Command allstores benchmarks `slipway build --all` of many stores of the
// real Next.js 15 app (testdata/realapps' storefront, each store with its
// own header override) against building the same composed apps one after
// another the plain way:
//
//   - slipway: one Build of every store with a new state dir (no
//     node_modules, no .next/cache, no image layers): one `npm ci` for the
//     app's lockfile, its node_modules linked into every store, the stores'
//     `next build`s in parallel (one per core), images published;
//   - peer: for each store in turn, a fresh copy of its composed app, then
//     `npm ci` and `next build` (what N CI jobs without Slipway run).
//
// npm's download cache is warmed once before either side runs and both use
// it, so neither pays the network; the peer's `npm ci` is still its own work.
// The peer's total is printed twice: with its npm ci runs, and with its
// `next build` runs only (as if node_modules were already there), and the
// ratio against each.
//
//	go run ./bench/allstores [-stores 10] [-peer-stores N] [-work DIR] [-keep] [-goal 0.6]
//
// -peer-stores below -stores times the peer on that many stores and scales
// its sum to -stores (said in the output): the peer's builds are sequential
// and identical but for the header, and a full run takes long on a shared
// 2-core machine.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/benchnext"
)

func main() {
	n := flag.Int("stores", 10, "how many stores of the Next.js app")
	peerN := flag.Int("peer-stores", 0, "how many of them the peer builds (0: all); its sum is scaled to -stores")
	work := flag.String("work", "", "working directory (default: a temp dir)")
	keep := flag.Bool("keep", false, "keep the working directory")
	goal := flag.Float64("goal", 0.6, "goal for slipway / peer")
	flag.Parse()
	if *peerN <= 0 || *peerN > *n {
		*peerN = *n
	}
	if err := run(*n, *peerN, *work, *keep, *goal); err != nil {
		fmt.Fprintln(os.Stderr, "bench/allstores:", err)
		os.Exit(1)
	}
}

func run(n, peerN int, work string, keep bool, goal float64) error {
	work, done, err := benchnext.Begin("allstores", work, keep)
	if err != nil {
		return err
	}
	defer done()
	fmt.Printf("%d stores of %s; work dir %s\n\n", n, benchnext.NextApp, work)

	repo := filepath.Join(work, "repo")
	stores, err := nStores(n)
	if err != nil {
		return err
	}
	if err := benchnext.CopyRepo(repo, func(dir string) error { return writeStores(dir, stores) }); err != nil {
		return err
	}
	npmCache := filepath.Join(work, "npm-cache")
	if err := warmNPM(filepath.Join(repo, "apps", benchnext.NextApp), filepath.Join(work, "npm-warm"), npmCache); err != nil {
		return err
	}
	os.Setenv("npm_config_cache", npmCache)

	log, err := os.Create(filepath.Join(work, "slipway.log"))
	if err != nil {
		return err
	}
	ours, err := benchnext.Build(repo, filepath.Join(work, "state"), nil, log)
	log.Close()
	if err != nil {
		return fmt.Errorf("slipway build --all (log %s): %w", log.Name(), err)
	}
	fmt.Printf("slipway build --all of %d stores: %.1fs\n", n, ours.Total.Seconds())
	for _, im := range ours.Images {
		fmt.Printf("  %-10s %s\n", im.Store, benchnext.Phases(im))
	}

	var npmSum, nextSum time.Duration
	for i, st := range stores[:peerN] {
		composed := filepath.Join(repo, ".out", st, benchnext.NextApp)
		npmCI, nextBuild, err := benchnext.Peer(composed, filepath.Join(work, "peer-"+st), npmCache)
		if err != nil {
			return fmt.Errorf("peer %s: %w", st, err)
		}
		os.RemoveAll(filepath.Join(work, "peer-"+st))
		npmSum += npmCI
		nextSum += nextBuild
		fmt.Printf("peer %2d/%d %-10s npm ci %.1fs, next build %.1fs\n", i+1, peerN, st, npmCI.Seconds(), nextBuild.Seconds())
	}
	scale := float64(n) / float64(peerN)
	note := ""
	if peerN < n {
		note = fmt.Sprintf(" (the sum of %d stores × %d/%d)", peerN, n, peerN)
	}
	withNPM := (npmSum + nextSum).Seconds() * scale
	nextOnly := nextSum.Seconds() * scale
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\nload average at end: %s", load)
	fmt.Printf("peer, %d × (npm ci && next build)%s: %.1fs\n", n, note, withNPM)
	fmt.Printf("peer, %d × next build, node_modules already there%s: %.1fs\n", n, note, nextOnly)
	r := ours.Total.Seconds() / withNPM
	verdict := "MISS"
	if r <= goal {
		verdict = "PASS"
	}
	fmt.Printf("slipway / peer (npm ci && next build): %.2f×  (goal ≤ %.1f×: %s)\n", r, goal, verdict)
	fmt.Printf("slipway / peer (next build only):      %.2f×\n", ours.Total.Seconds()/nextOnly)
	return nil
}

func nStores(n int) ([]string, error) {
	if n < 1 || n > 99 {
		return nil, fmt.Errorf("-stores %d: want 1 to 99", n)
	}
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, fmt.Sprintf("next-%02d", i))
	}
	return out, nil
}

// writeStores replaces the copy's stores with n Next.js stores, each with
// its own header (from next-us's override), and drops the Nuxt app.
func writeStores(dir string, stores []string) error {
	header, err := os.ReadFile(filepath.Join(dir, "apps/stores/next-us", benchnext.NextApp, "components/header.js"))
	if err != nil {
		return err
	}
	for _, d := range []string{"apps/stores", "apps/storefront-unified-nuxt"} {
		if err := os.RemoveAll(filepath.Join(dir, d)); err != nil {
			return err
		}
	}
	cfg := map[string]map[string]map[string]string{"stores": {}}
	for _, st := range stores {
		cfg["stores"][st] = map[string]string{"projectName": st, "region": "eu-west-1", "framework": "next"}
		p := filepath.Join(dir, "apps/stores", st, benchnext.NextApp, "components/header.js")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		body := strings.ReplaceAll(string(header), "next-us", st)
		if body == string(header) {
			body = strings.Replace(body, "</h1>", " "+st+"</h1>", 1)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "alokai.config.json"), b, 0o644)
}

// warmNPM fills npmCache by one untimed `npm ci` of the app in a scratch copy.
func warmNPM(app, scratch, npmCache string) error {
	if out, err := exec.Command("cp", "-a", app, scratch).CombinedOutput(); err != nil {
		return fmt.Errorf("copying %s: %v: %s", app, err, out)
	}
	defer os.RemoveAll(scratch)
	cmd := exec.Command("npm", "ci", "--include=dev", "--no-audit", "--no-fund")
	cmd.Dir = scratch
	cmd.Env = append(os.Environ(), "npm_config_cache="+npmCache)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("warming the npm cache: %v: %s", err, out)
	}
	return nil
}
