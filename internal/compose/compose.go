package compose

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/config"
)

// OutDirName is the directory, under the monorepo root, that holds composed stores.
const OutDirName = ".out"

// stateDirName holds Slipway's own bookkeeping inside the out dir.
const stateDirName = ".slipway"

// retainLimit caps the bytes of source content kept in memory to be written to many stores.
const retainLimit = 512 << 20

// smallFile is the size up to which a source file is read into memory once and written from there.
const smallFile = 1 << 20

// Composer materialises stores of one config into an out directory.
type Composer struct {
	cfg     *config.Config
	src     *WorkTree
	list    *listCache
	out     string
	workers int
	umask   fs.FileMode

	mu       sync.Mutex
	content  map[string][]byte // small source files by absolute path
	retained int64
}

// Option configures a Composer.
type Option func(*Composer)

// WithOutDir sets the out directory. Default: <root>/.out.
func WithOutDir(dir string) Option { return func(c *Composer) { c.out = dir } }

// WithWorkers sets how many files or stores are written at once. Default: 2 × GOMAXPROCS.
func WithWorkers(n int) Option {
	return func(c *Composer) {
		if n > 0 {
			c.workers = n
		}
	}
}

// New returns a Composer for cfg's working tree.
func New(cfg *config.Config, opts ...Option) *Composer {
	c := &Composer{
		cfg:     cfg,
		src:     NewWorkTree(cfg.Root),
		out:     filepath.Join(cfg.Root, OutDirName),
		workers: 2 * runtime.GOMAXPROCS(0),
		umask:   processUmask(),
		content: map[string][]byte{},
	}
	for _, o := range opts {
		o(c)
	}
	c.list = &listCache{Source: c.src, m: map[string]*listing{}}
	return c
}

// OutDir returns the out directory.
func (c *Composer) OutDir() string { return c.out }

// AppResult describes one composed app.
type AppResult struct {
	App         string `json:"app"`
	Dir         string `json:"dir"`
	Fingerprint string `json:"fingerprint"`
	Files       int    `json:"files"`
}

// StoreResult describes one composed store.
type StoreResult struct {
	Store string      `json:"store"`
	Dir   string      `json:"dir"`
	Apps  []AppResult `json:"apps"`
	// Written counts files and links (re)written; Removed counts entries deleted.
	Written  int           `json:"written"`
	Removed  int           `json:"removed"`
	Full     bool          `json:"full"`
	Duration time.Duration `json:"-"`
	Millis   int64         `json:"durationMs"`
	Warnings []string      `json:"warnings,omitempty"`
}

// PlanAll plans and fingerprints the given stores, reading sources but writing nothing.
func (c *Composer) PlanAll(ctx context.Context, storeIDs []string) ([]*StorePlan, [][]string, error) {
	c.loadHashes()
	plans := make([]*StorePlan, len(storeIDs))
	fps := make([][]string, len(storeIDs))
	planErrs := make([]error, len(storeIDs))
	idx := make([]int, len(storeIDs))
	for i := range idx {
		idx[i] = i
	}
	// Stores plan independently (layer listings are shared through the cache).
	if err := parallel(ctx, runtime.GOMAXPROCS(0), idx, func(i int) error {
		plans[i], planErrs[i] = Plan(c.cfg, c.list, storeIDs[i])
		return nil
	}); err != nil {
		return nil, nil, err
	}
	if err := errors.Join(planErrs...); err != nil {
		return nil, nil, err
	}
	// Hash every distinct source file once, in parallel; stores share most of them.
	var mu sync.Mutex
	err := parallel(ctx, c.workers, c.distinctFiles(plans), func(n *Node) error {
		h, data, err := c.hashRetaining(n)
		if err != nil {
			return err
		}
		mu.Lock()
		n.Hash = h
		if data != nil {
			c.content[n.Src] = data
		}
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	for i, sp := range plans {
		for _, ap := range sp.Apps {
			fp, err := ap.Fingerprint(c.src)
			if err != nil {
				return nil, nil, err
			}
			fps[i] = append(fps[i], fp)
		}
	}
	return plans, fps, nil
}

// distinctFiles returns one node per distinct source file of the plans, and points
// every entry's node at the shared hash once computed (via the WorkTree cache).
func (c *Composer) distinctFiles(plans []*StorePlan) []*Node {
	seen := map[string]bool{}
	var out []*Node
	for _, sp := range plans {
		for _, ap := range sp.Apps {
			for i := range ap.Entries {
				n := &ap.Entries[i].Node
				if n.Kind != File || seen[n.Src] {
					continue
				}
				seen[n.Src] = true
				out = append(out, n)
			}
		}
	}
	return out
}

// hashRetaining hashes a file through the stat cache; when it must read a small
// file anyway it keeps the bytes, so composing many stores reads each source once.
func (c *Composer) hashRetaining(n *Node) (string, []byte, error) {
	if h, ok := c.src.cached(n); ok {
		return h, nil, nil
	}
	if n.Size > smallFile {
		h, err := c.src.Hash(n)
		return h, nil, err
	}
	data, err := os.ReadFile(n.Src)
	if err != nil {
		return "", nil, err
	}
	if int64(len(data)) != n.Size {
		return "", nil, fmt.Errorf("%s changed while being composed", n.Src)
	}
	h := BlobID(data)
	c.src.remember(n, h)
	c.mu.Lock()
	keep := c.retained+n.Size <= retainLimit
	if keep {
		c.retained += n.Size
	}
	c.mu.Unlock()
	if !keep {
		data = nil
	}
	return h, data, nil
}

// IgnoreDir makes git ignore everything in dir (a .gitignore holding "*"), so
// that Slipway's own output never makes the work tree dirty, whatever the
// repository's own .gitignore says.
func IgnoreDir(dir string) error {
	p := filepath.Join(dir, ".gitignore")
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte("# Written by slipway: nothing here belongs in git.\n*\n"), 0o644)
}

// Compose plans every store first — bad input changes nothing on disk — then
// materialises each store atomically into <out>/<store>.
func (c *Composer) Compose(ctx context.Context, storeIDs []string) ([]StoreResult, error) {
	plans, fps, err := c.PlanAll(ctx, storeIDs)
	if err != nil {
		return nil, err
	}
	unlock, err := c.lockOut(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := c.prepareOut(); err != nil {
		return nil, err
	}
	results := make([]StoreResult, len(plans))
	storeWorkers := min(c.workers, len(plans))
	fileWorkers := max(1, c.workers/max(1, storeWorkers))
	idx := make([]int, len(plans))
	for i := range idx {
		idx[i] = i
	}
	var mu sync.Mutex
	var errs []error
	perr := parallel(ctx, storeWorkers, idx, func(i int) error {
		start := time.Now()
		r, err := c.materialise(ctx, plans[i], fps[i], fileWorkers)
		if err != nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("composing store %s: %w", plans[i].Store.ID, err))
			mu.Unlock()
			return nil // the other stores still finish; each store is atomic on its own
		}
		r.Duration = time.Since(start)
		r.Millis = r.Duration.Milliseconds()
		results[i] = r
		return nil
	})
	if perr != nil {
		errs = append(errs, perr)
	}
	if err := c.saveHashes(); err != nil {
		errs = append(errs, err)
	}
	return results, errors.Join(errs...)
}

func (c *Composer) stateDir() string { return filepath.Join(c.out, stateDirName) }

func (c *Composer) prepareOut() error {
	if err := os.MkdirAll(filepath.Join(c.stateDir(), "tmp"), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", c.stateDir(), err)
	}
	if err := IgnoreDir(c.out); err != nil {
		return err
	}
	// Leftovers of an interrupted run: never part of a store, safe to delete.
	entries, _ := os.ReadDir(filepath.Join(c.stateDir(), "tmp"))
	for _, e := range entries {
		os.RemoveAll(filepath.Join(c.stateDir(), "tmp", e.Name()))
	}
	return nil
}

func randomSuffix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// want is one desired entry of a store's out tree.
type want struct {
	path string // relative to <out>/<store>
	node *Node
}

// desired lists the store's out tree, parents before children (each app's
// entries are sorted; that order is all creation needs).
func desired(sp *StorePlan) []want {
	n := 0
	for _, ap := range sp.Apps {
		n += len(ap.Entries) + 1
	}
	ws := make([]want, 0, n)
	for _, ap := range sp.Apps {
		ws = append(ws, want{path: ap.App.AppFolder(), node: &Node{Kind: Dir, Mode: 0o755}})
		for i := range ap.Entries {
			e := &ap.Entries[i]
			ws = append(ws, want{path: ap.App.AppFolder() + "/" + e.Path, node: &e.Node})
		}
	}
	return ws
}

func (c *Composer) materialise(ctx context.Context, sp *StorePlan, fps []string, fileWorkers int) (StoreResult, error) {
	id := sp.Store.ID
	dir := filepath.Join(c.out, id)
	r := StoreResult{Store: id, Dir: dir, Warnings: sp.Warnings}
	for i, ap := range sp.Apps {
		r.Apps = append(r.Apps, AppResult{App: ap.App.ID, Dir: filepath.Join(dir, ap.App.AppFolder()), Fingerprint: fps[i], Files: countFiles(ap)})
	}
	ws := desired(sp)
	m := c.loadManifest(id)
	hint := len(ws)
	if m != nil {
		hint = len(m.Files)
	}
	existing, err := scanTree(dir, hint)
	if err != nil {
		return r, err
	}
	var newM *manifest
	if m == nil || existing == nil {
		r.Full = true
		newM, r.Written, err = c.full(ctx, dir, ws, fileWorkers)
	} else {
		newM, r.Written, r.Removed, err = c.incremental(ctx, dir, ws, m, existing, fileWorkers)
	}
	if err != nil {
		return r, err
	}
	if newM != nil {
		if err := c.saveManifest(id, newM); err != nil {
			return r, err
		}
	}
	return r, nil
}

func countFiles(ap *AppPlan) int {
	n := 0
	for _, e := range ap.Entries {
		if e.Node.Kind != Dir {
			n++
		}
	}
	return n
}

// writeHook lets tests inject a failure before a file is written.
var writeHook func(dst string) error

// writeEntry creates one file or symlink at dst and returns its manifest record.
func (c *Composer) writeEntry(dst string, n *Node) (outEntry, error) {
	if writeHook != nil {
		if err := writeHook(dst); err != nil {
			return outEntry{}, err
		}
	}
	switch n.Kind {
	case Symlink:
		if err := os.Symlink(n.Link, dst); err != nil {
			return outEntry{}, err
		}
		st, _, _, err := lstatKey(dst)
		if err != nil {
			return outEntry{}, err
		}
		return outEntry{Kind: Symlink, Link: n.Link, Stat: st}, nil
	case File:
		c.mu.Lock()
		data := c.content[n.Src]
		c.mu.Unlock()
		if data == nil && n.Size <= smallFile {
			var err error
			if data, err = os.ReadFile(n.Src); err != nil {
				return outEntry{}, err
			}
			if n.Size == 0 {
				data = []byte{}
			}
			if BlobID(data) != n.Hash {
				return outEntry{}, fmt.Errorf("%s changed while being composed", n.Src)
			}
		}
		st, err := writeNew(dst, n.Mode, c.umask, data, n.Src)
		if err != nil {
			return outEntry{}, err
		}
		return outEntry{Kind: File, Mode: n.Mode, Hash: n.Hash, Stat: st}, nil
	}
	return outEntry{}, fmt.Errorf("%s: cannot write a %c entry", dst, n.Kind)
}

// full writes the whole store into a temporary tree and swaps it into place.
func (c *Composer) full(ctx context.Context, dir string, ws []want, workers int) (*manifest, int, error) {
	tmp := filepath.Join(c.stateDir(), "tmp", filepath.Base(dir)+"-"+randomSuffix())
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return nil, 0, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	m := &manifest{Version: manifestVersion, Files: make(map[string]outEntry, len(ws))}
	var files []want
	var fixModes []want
	for _, w := range ws {
		if w.node.Kind != Dir {
			files = append(files, w)
			continue
		}
		p := filepath.Join(tmp, filepath.FromSlash(w.path))
		if err := os.Mkdir(p, 0o755); err != nil {
			return nil, 0, err
		}
		m.Files[w.path] = outEntry{Kind: Dir, Mode: w.node.Mode}
		if w.node.Mode != 0o755 {
			fixModes = append(fixModes, w)
		}
	}
	var mu sync.Mutex
	err := parallel(ctx, workers, files, func(w want) error {
		e, err := c.writeEntry(filepath.Join(tmp, filepath.FromSlash(w.path)), w.node)
		if err != nil {
			return err
		}
		mu.Lock()
		m.Files[w.path] = e
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	// Directory modes last, deepest first, so a read-only directory is filled before it closes.
	for i := len(fixModes) - 1; i >= 0; i-- {
		w := fixModes[i]
		if err := os.Chmod(filepath.Join(tmp, filepath.FromSlash(w.path)), w.node.Mode); err != nil {
			return nil, 0, err
		}
	}
	if err := swapIn(tmp, dir); err != nil {
		return nil, 0, err
	}
	ok = true
	// tmp now holds the previous tree, if there was one.
	if err := removeAllWritable(tmp); err != nil {
		return nil, 0, fmt.Errorf("removing the previous tree: %w", err)
	}
	return m, len(files), nil
}

// swapIn puts the tree at tmp at dir; afterwards tmp holds the old tree or nothing.
func swapIn(tmp, dir string) error {
	err := os.Rename(tmp, dir)
	if err == nil {
		return nil
	}
	if _, statErr := os.Lstat(dir); statErr != nil {
		return err
	}
	if err := exchange(tmp, dir); err == nil {
		return nil
	}
	// No atomic exchange here: move the old tree aside, then the new one in, undoing on failure.
	aside := tmp + ".old"
	if err := os.Rename(dir, aside); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.Rename(aside, dir)
		return err
	}
	return os.Rename(aside, tmp)
}

// removeAllWritable removes a tree even where composition made directories read-only.
func removeAllWritable(p string) error {
	if err := os.RemoveAll(p); err == nil {
		return nil
	}
	filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(q, 0o755)
		}
		return nil
	})
	return os.RemoveAll(p)
}

// parallel runs fn over items with n workers and returns the first error; it stops
// handing out items after an error or when ctx is done.
func parallel[T any](ctx context.Context, n int, items []T, fn func(T) error) error {
	if len(items) == 0 {
		return nil
	}
	n = max(1, min(n, len(items)))
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  int
	)
	take := func() (T, bool) {
		mu.Lock()
		defer mu.Unlock()
		var zero T
		if first != nil || next >= len(items) {
			return zero, false
		}
		if err := ctx.Err(); err != nil {
			first = err
			return zero, false
		}
		next++
		return items[next-1], true
	}
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				it, ok := take()
				if !ok {
					return
				}
				if err := fn(it); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// listCache shares layer listings between stores: a base app is listed once per
// run, not once per store, even when stores are planned at the same time.
type listCache struct {
	Source
	mu sync.Mutex
	m  map[string]*listing
	// prefixes holds merged layer prefixes (a base app, base + brand, ...) by layer dirs.
	prefixes map[string]map[string]Entry
}

func prefixKey(ls []Layer) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.Dir)
		b.WriteByte(0)
	}
	return b.String()
}

func (l *listCache) merged(ls []Layer) (map[string]Entry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.prefixes[prefixKey(ls)]
	return m, ok
}

func (l *listCache) keepMerged(ls []Layer, m map[string]Entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.prefixes == nil {
		l.prefixes = map[string]map[string]Entry{}
	}
	l.prefixes[prefixKey(ls)] = m
}

type listing struct {
	once  sync.Once
	nodes []Node
	err   error
}

func (l *listCache) List(dir string, skip map[string]bool) ([]Node, error) {
	l.mu.Lock()
	e, ok := l.m[dir]
	if !ok {
		e = &listing{}
		l.m[dir] = e
	}
	l.mu.Unlock()
	e.once.Do(func() { e.nodes, e.err = l.Source.List(dir, skip) })
	return e.nodes, e.err
}

var _ Source = (*listCache)(nil)
var _ Source = (*WorkTree)(nil)

// isUnder reports whether p is below dir (both slash paths).
func isUnder(p, dir string) bool { return strings.HasPrefix(p, dir+"/") }

func parentOf(p string) string {
	d := path.Dir(p)
	if d == "." {
		return ""
	}
	return d
}
