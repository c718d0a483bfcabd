package build

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/testenv"
)

// tracerModule has the shape the hook wraps (nft's nodeFileTrace, behind a
// getter as in Next's compiled copy): it follows require('./x') lines and
// asset('./y') lines through opts.stat/readFile, analysing each file once per
// opts.cache.analysisCache, and says which files it analysed. The real nft
// runs in TestNextTraceCacheRealNext (integration).
const tracerModule = `
const path = require('path');
async function nodeFileTrace(files, opts) {
  const ac = (opts.cache && opts.cache.analysisCache) || new Map();
  const job = { stat: opts.stat, readFile: opts.readFile, readlink: opts.readlink };
  const fileList = new Set(), analysed = [];
  const queue = files.slice();
  while (queue.length) {
    const f = queue.shift();
    if (fileList.has(f)) continue;
    fileList.add(f);
    await job.readlink(f);
    let a = ac.get(f);
    if (!a) {
      const src = String(await job.readFile(f));
      analysed.push(path.relative(opts.processCwd, f));
      a = { deps: new Set(), imports: new Set(), assets: new Set(), isESM: false };
      for (const m of src.matchAll(/require\('([^']+)'\)/g)) a.deps.add(m[1]);
      for (const m of src.matchAll(/asset\('([^']+)'\)/g)) {
        const p = path.resolve(path.dirname(f), m[1]);
        if (await job.stat(p)) a.assets.add(p);
      }
      ac.set(f, a);
    }
    for (const d of a.deps) {
      const p = path.resolve(path.dirname(f), d);
      if (await job.stat(p)) queue.push(p);
    }
    for (const p of a.assets) fileList.add(p);
  }
  opts.ignore('node_modules/lib/*.node');
  return { fileList: [...fileList].map((f) => path.relative(opts.processCwd, f)).sort(), analysed: analysed.sort() };
}
Object.defineProperty(exports, 'nodeFileTrace', { enumerable: true, get: () => nodeFileTrace });
`

// traceDriver calls the tracer as Next does: its own stat/readFile/readlink
// and an ignore function, from the app directory.
const traceDriver = `
const fs = require('fs'), path = require('path');
const nft = require('next/dist/compiled/@vercel/nft');
const cwd = process.cwd();
nft.nodeFileTrace([path.join(cwd, 'node_modules/lib/index.js'), path.join(cwd, 'server.js')], {
  base: cwd, processCwd: cwd, mixedModules: true,
  readFile: (p) => fs.promises.readFile(p, 'utf8').catch(() => ''),
  readlink: (p) => fs.promises.readlink(p).catch((e) => { if (e.code === 'EINVAL' || e.code === 'ENOENT') return null; throw e; }),
  stat: (p) => fs.promises.stat(p).catch((e) => { if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return null; throw e; }),
  ignore: (p) => p.includes('ignored') || process.env.IGNORE_NODE === '1' && p.endsWith('.node'),
}).then((r) => console.log(JSON.stringify(r)));
`

type traceRun struct {
	FileList []string `json:"fileList"`
	Analysed []string `json:"analysed"`
	Log      string
}

func writeTraceApp(t *testing.T, dir string) {
	t.Helper()
	files := map[string]string{
		"node_modules/next/package.json":                       `{"name":"next","version":"0.0.0-test"}`,
		"node_modules/next/dist/compiled/@vercel/nft/index.js": tracerModule,
		"node_modules/lib/index.js":                            "require('./a.js'); asset('./data.bin');",
		"node_modules/lib/a.js":                                "require('./b.js'); asset('../../extra.txt');",
		"node_modules/lib/b.js":                                "asset('./optional.txt');",
		"node_modules/lib/data.bin":                            "x",
		"server.js":                                            "require('./node_modules/lib/index.js');",
		"extra.txt":                                            "the app's own file",
		"drive.js":                                             traceDriver,
	}
	for p, body := range files {
		p = filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func runTrace(t *testing.T, c *Cache, dir string, extraEnv ...string) traceRun {
	t.Helper()
	env := c.nextTraceStepEnv(dir, "web", "key1", os.Environ())
	if env == nil {
		t.Fatal("no trace env for a Next.js app")
	}
	cmd := exec.Command(testenv.Node(t), "drive.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), extraEnv...)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("trace: %v\n%s", err, stderr.String())
	}
	var r traceRun
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("trace output %q: %v", out, err)
	}
	r.Log = stderr.String()
	return r
}

// The hook keeps node_modules analyses between traces, shares them between
// the stores of an app, and never lets a kept one change what is found.
func TestNextTraceCacheReusesOnlyWhatHolds(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	os.MkdirAll(c.depsDir("web", "key1"), 0o755)
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	writeTraceApp(t, a)
	linkTree(filepath.Join(a, "node_modules"), filepath.Join(b, "node_modules")) // as a cache hit does
	writeTraceApp(t, b)
	// b's files were rewritten: give them a's mtimes back, as hard links share them.
	for _, f := range []string{"index.js", "a.js", "b.js"} {
		st, _ := os.Stat(filepath.Join(a, "node_modules/lib", f))
		os.Chtimes(filepath.Join(b, "node_modules/lib", f), st.ModTime(), st.ModTime())
	}
	want := []string{"extra.txt", "node_modules/lib/a.js", "node_modules/lib/b.js", "node_modules/lib/data.bin", "node_modules/lib/index.js", "server.js"}
	all := []string{"node_modules/lib/a.js", "node_modules/lib/b.js", "node_modules/lib/index.js", "server.js"}

	first := runTrace(t, c, a)
	if !slices.Equal(first.FileList, want) || !slices.Equal(first.Analysed, all) {
		t.Fatalf("first trace: %+v", first)
	}
	if !strings.Contains(first.Log, "0 of 3 node_modules analyses reused (first trace), 2 kept") {
		t.Errorf("first trace log: %q", first.Log)
	}
	// a.js refers outside node_modules: never kept. The app's own file is analysed every time.
	again := runTrace(t, c, a)
	if !slices.Equal(again.FileList, want) || !slices.Equal(again.Analysed, []string{"node_modules/lib/a.js", "server.js"}) {
		t.Errorf("second trace: %+v", again)
	}
	// Another store of the app, same node_modules: reused there too.
	if other := runTrace(t, c, b); !slices.Equal(other.FileList, want) || !slices.Equal(other.Analysed, []string{"node_modules/lib/a.js", "server.js"}) {
		t.Errorf("other store: %+v", other)
	}

	// A changed file is analysed again, the others still come from the cache.
	time.Sleep(10 * time.Millisecond)
	os.WriteFile(filepath.Join(a, "node_modules/lib/index.js"), []byte("require('./a.js'); asset('./data.bin'); asset('./new.bin');"), 0o644)
	os.WriteFile(filepath.Join(a, "node_modules/lib/new.bin"), []byte("y"), 0o644)
	changed := runTrace(t, c, a)
	if !slices.Contains(changed.FileList, "node_modules/lib/new.bin") || !slices.Equal(changed.Analysed, []string{"node_modules/lib/a.js", "node_modules/lib/index.js", "server.js"}) {
		t.Errorf("after a change: %+v", changed)
	}

	// A file an analysis looked for and did not find appears: nothing is reused.
	os.WriteFile(filepath.Join(a, "node_modules/lib/optional.txt"), []byte("now here"), 0o644)
	appeared := runTrace(t, c, a)
	if !slices.Contains(appeared.FileList, "node_modules/lib/optional.txt") || len(appeared.Analysed) != 4 || !strings.Contains(appeared.Log, "optional.txt changed") {
		t.Errorf("after a probed file appeared: %+v", appeared)
	}

	// The ignore function answers a glob differently: nothing is reused.
	if ig := runTrace(t, c, a, "IGNORE_NODE=1"); len(ig.Analysed) != 4 || !strings.Contains(ig.Log, "ignore of node_modules/lib/*.node changed") {
		t.Errorf("after the ignore changed: %+v", ig)
	}

	// A cache file it cannot make sense of is ignored, and rewritten.
	kept, _ := filepath.Glob(filepath.Join(c.nextTraceDir("web", "key1"), "nft-*.json"))
	if len(kept) != 1 {
		t.Fatalf("trace cache files: %v", kept)
	}
	st, _ := os.Stat(filepath.Join(a, "node_modules/lib/b.js"))
	bad := fmt.Sprintf(`{"format":1,"entries":{"lib/b.js":{"size":%d,"mtime":%d}}}`, st.Size(), st.ModTime().UnixMilli())
	os.WriteFile(kept[0], []byte(bad), 0o644)
	os.Chtimes(filepath.Join(a, "node_modules/lib/b.js"), time.UnixMilli(st.ModTime().UnixMilli()), time.UnixMilli(st.ModTime().UnixMilli()))
	if broken := runTrace(t, c, a); !slices.Equal(broken.FileList, appeared.FileList) || len(broken.Analysed) != 4 || !strings.Contains(broken.Log, "(unreadable: ") {
		t.Errorf("with a broken cache file: %+v", broken)
	}
	if again := runTrace(t, c, a); len(again.Analysed) != 2 {
		t.Errorf("after a broken cache file was rewritten: %+v", again)
	}

	// Turned off: no hook, no cache.
	if env := c.nextTraceStepEnv(a, "web", "key1", []string{NextTraceEnv + "=off"}); env != nil {
		t.Errorf("%s=off still adds %v", NextTraceEnv, env)
	}
	// NODE_OPTIONS the build already has are kept, before the hook.
	if env := c.nextTraceStepEnv(a, "web", "key1", []string{"NODE_OPTIONS=--max-old-space-size=4096"}); !strings.HasPrefix(env["NODE_OPTIONS"], "--max-old-space-size=4096 --require ") {
		t.Errorf("NODE_OPTIONS = %q", env["NODE_OPTIONS"])
	}
	// Not a Next.js app: nothing added.
	if env := c.nextTraceStepEnv(t.TempDir(), "web", "key1", nil); env != nil {
		t.Errorf("non-Next app gets %v", env)
	}
}
