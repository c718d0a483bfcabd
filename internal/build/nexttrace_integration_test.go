//go:build integration

package build

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/testenv"
)

// nextTraces reads every .nft.json Next wrote under dir/.next (the files
// the standalone output is made of), by path.
func nextTraces(t *testing.T, dir string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	root := filepath.Join(dir, ".next")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "cache" || d.Name() == "standalone") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(p, ".nft.json") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var nft struct {
			Files []string `json:"files"`
		}
		if err := json.Unmarshal(b, &nft); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		slices.Sort(nft.Files)
		out[rel] = nft.Files
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 || len(out["next-server.js.nft.json"]) == 0 {
		t.Fatalf("no standalone traces under %s: %v", root, out)
	}
	return out
}

// The trace cache leaves a real `next build`'s traces exactly as Next makes
// them without it (with nft's own trace in full), and a second build reuses
// the node_modules analyses.
func TestNextTraceCacheRealNext(t *testing.T) {
	testenv.Node(t)
	testenv.NPM(t)
	_, self, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(self), "..", "..", "testdata", "realapps", "apps", "storefront-unified-nextjs")
	dir := filepath.Join(t.TempDir(), "web")
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	home, _ := os.UserHomeDir()
	cache := &Cache{Dir: t.TempDir()}
	build := func(extraEnv ...string) (string, map[string][]string) {
		t.Helper()
		os.RemoveAll(filepath.Join(dir, ".next"))
		var log strings.Builder
		r := Runner{Verbose: true, Out: &log, Cache: cache, Commit: "c1",
			BaseEnv: append(os.Environ(), append([]string{"npm_config_cache=" + filepath.Join(home, ".npm"), "npm_config_update_notifier=false", "NEXT_TELEMETRY_DISABLED=1"}, extraEnv...)...)}
		res := r.Run(context.Background(), []Task{{Store: "s1", App: "web", Dir: dir}})
		if res[0].Err != nil {
			t.Fatalf("build: %v\n%s", res[0].Err, log.String())
		}
		return log.String(), nextTraces(t, dir)
	}
	reused := regexp.MustCompile(`slipway: next trace: (\d+) of (\d+) node_modules analyses reused`)

	coldLog, cold := build()
	plainLog, plain := build(NextTraceEnv + "=off")
	if reused.MatchString(plainLog) {
		t.Fatalf("%s=off still ran the hook:\n%s", NextTraceEnv, plainLog)
	}
	warmLog, warm := build()

	if m := reused.FindAllStringSubmatch(coldLog, -1); len(m) == 0 {
		t.Errorf("the cold build did not run the hook:\n%s", coldLog)
	}
	var best int
	for _, m := range reused.FindAllStringSubmatch(warmLog, -1) {
		n, _ := strconv.Atoi(m[1])
		best = max(best, n)
	}
	if best < 500 {
		t.Errorf("the warm build reused %d analyses, want most of node_modules':\n%s", best, warmLog)
	}
	for name, files := range plain {
		if !slices.Equal(cold[name], files) {
			t.Errorf("%s: the cold build with the hook traced %d files, without it %d; differences: %v", name, len(cold[name]), len(files), diffLists(cold[name], files))
		}
		if !slices.Equal(warm[name], files) {
			t.Errorf("%s: the warm build with reused analyses traced %d files, without the hook %d; differences: %v", name, len(warm[name]), len(files), diffLists(warm[name], files))
		}
	}
	if len(cold) != len(plain) || len(warm) != len(plain) {
		t.Errorf("trace files: cold %d, warm %d, without the hook %d", len(cold), len(warm), len(plain))
	}
}

// diffLists is what only one of two sorted lists has, marked - (a) and + (b); at most 10.
func diffLists(a, b []string) []string {
	var out []string
	for _, s := range a {
		if _, ok := slices.BinarySearch(b, s); !ok {
			out = append(out, "-"+s)
		}
	}
	for _, s := range b {
		if _, ok := slices.BinarySearch(a, s); !ok {
			out = append(out, "+"+s)
		}
	}
	return out[:min(len(out), 10)]
}
