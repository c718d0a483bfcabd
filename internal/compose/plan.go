package compose

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"sort"
	"strings"

	"github.com/slipway-dev/slipway/internal/config"
)

// LayerKind tells where a layer sits in a store's inheritance chain.
type LayerKind string

const (
	// BaseLayer is the base app.
	BaseLayer LayerKind = "base"
	// AncestorLayer is a parent (or further) store's app folder.
	AncestorLayer LayerKind = "ancestor"
	// StoreLayer is the store's own app folder.
	StoreLayer LayerKind = "store"
)

// Layer is one directory contributing files to a composed app; later layers win.
type Layer struct {
	Kind LayerKind `json:"kind"`
	// Store is the store id for ancestor and store layers.
	Store string `json:"store,omitempty"`
	// Dir is the directory relative to the repo root.
	Dir string `json:"dir"`
}

// Entry is one path of a composed app and the node it comes from.
type Entry struct {
	Path  string // relative to the app, slash-separated
	Node  Node
	Layer int // index into AppPlan.Layers
}

// AppPlan is the composed content of one app of one store.
type AppPlan struct {
	App     *config.App
	Layers  []Layer
	Entries []Entry // sorted by Path
}

// StorePlan is everything composed for one store.
type StorePlan struct {
	Store *config.Store
	Apps  []*AppPlan
	// Warnings are non-fatal findings, e.g. delete patterns that matched nothing.
	Warnings []string
}

// PlanError is a composition input Slipway refuses; it names the offending file.
type PlanError struct {
	File string // repo-relative path
	Err  error
}

func (e *PlanError) Error() string { return e.File + ": " + e.Err.Error() }
func (e *PlanError) Unwrap() error { return e.Err }

// Sentinel reasons for PlanError.
var (
	ErrSymlinkEscape = errors.New("symlink points outside the composed app")
	ErrSymlinkAbs    = errors.New("absolute symlink")
	ErrBadDelete     = errors.New("invalid delete entry")
)

// Plan computes the composed tree of every app of a store, reading only metadata.
func Plan(cfg *config.Config, src Source, storeID string) (*StorePlan, error) {
	st := cfg.Store(storeID)
	if st == nil {
		return nil, fmt.Errorf("unknown store %q", storeID)
	}
	sp := &StorePlan{Store: st}
	skip := cfg.SkipSet()
	chain := cfg.Chain(storeID)
	var errs []error
	for _, app := range cfg.AppsFor(storeID) {
		ap := &AppPlan{App: app, Layers: []Layer{{Kind: BaseLayer, Dir: app.Path}}}
		for _, s := range chain {
			if s.Dir == "" {
				continue
			}
			k := AncestorLayer
			if s.ID == storeID {
				k = StoreLayer
			}
			ap.Layers = append(ap.Layers, Layer{Kind: k, Store: s.ID, Dir: path.Join(s.Dir, app.AppFolder())})
		}
		warnings, err := ap.merge(src, skip)
		sp.Warnings = append(sp.Warnings, warnings...)
		if err != nil {
			errs = append(errs, err)
		}
		sp.Apps = append(sp.Apps, ap)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return sp, nil
}

func (ap *AppPlan) merge(src Source, skip map[string]bool) (warnings []string, err error) {
	merged := map[string]Entry{}
	// Stores share their ancestors' layers: start from the longest merged
	// prefix another store of this run already computed.
	cache, _ := src.(*listCache)
	start := 0
	if cache != nil {
		for k := len(ap.Layers) - 1; k >= 1; k-- {
			if m, ok := cache.merged(ap.Layers[:k]); ok {
				merged, start = maps.Clone(m), k
				break
			}
		}
	}
	removeTree := func(p string) {
		delete(merged, p)
		prefix := p + "/"
		for k := range merged {
			if strings.HasPrefix(k, prefix) {
				delete(merged, k)
			}
		}
	}
	var errs []error
	for i := start; i < len(ap.Layers); i++ {
		l := ap.Layers[i]
		nodes, err := src.List(l.Dir, skip)
		if err != nil {
			errs = append(errs, fmt.Errorf("listing %s: %w", l.Dir, err))
			continue
		}
		if i > 0 {
			if w, err := applyDeletes(src, l, nodes, merged, removeTree); err != nil {
				errs = append(errs, err)
			} else {
				warnings = append(warnings, w...)
			}
		}
		for _, n := range nodes {
			if n.Rel == config.DeleteFile {
				continue
			}
			if n.Kind == Symlink {
				if err := checkLink(n.Rel, n.Link); err != nil {
					errs = append(errs, &PlanError{File: path.Join(l.Dir, n.Rel), Err: err})
					continue
				}
			}
			if old, ok := merged[n.Rel]; ok && old.Node.Kind != n.Kind {
				removeTree(n.Rel)
			}
			// A nearer layer's file where an older layer had a file at a parent path:
			// the parent becomes a directory. Nodes come parent first, so when the
			// parent is already a directory every ancestor was checked with it.
			if parent := path.Dir(n.Rel); parent != "." {
				if old, ok := merged[parent]; !ok || old.Node.Kind != Dir {
					for p := parent; p != "."; p = path.Dir(p) {
						if old, ok := merged[p]; ok && old.Node.Kind != Dir {
							removeTree(p)
						}
					}
				}
			}
			merged[n.Rel] = Entry{Path: n.Rel, Node: n, Layer: i}
		}
		if cache != nil && len(errs) == 0 && i < len(ap.Layers)-1 {
			cache.keepMerged(ap.Layers[:i+1], maps.Clone(merged))
		}
	}
	// Each link was checked on its own; a chain of links (a -> ., b -> a/a/../..)
	// can still lead out, so resolve every link through the composed tree.
	for p, e := range merged {
		if e.Node.Kind == Symlink && escapes(merged, p) {
			errs = append(errs, &PlanError{File: path.Join(ap.Layers[e.Layer].Dir, e.Node.Rel),
				Err: fmt.Errorf("%w: %s -> %s leads outside through other links", ErrSymlinkEscape, p, e.Node.Link)})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	ap.Entries = make([]Entry, 0, len(merged))
	for _, e := range merged {
		ap.Entries = append(ap.Entries, e)
	}
	sort.Slice(ap.Entries, func(i, j int) bool { return ap.Entries[i].Path < ap.Entries[j].Path })
	return warnings, nil
}

// checkLink accepts only relative symlinks that resolve inside the composed app.
func checkLink(rel, target string) error {
	if target == "" {
		return fmt.Errorf("%w: empty target", ErrSymlinkEscape)
	}
	if path.IsAbs(target) || strings.HasPrefix(target, "\\") {
		return fmt.Errorf("%w -> %s: use a relative link inside the app", ErrSymlinkAbs, target)
	}
	resolved := path.Join(path.Dir(rel), target)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return fmt.Errorf("%w: %s -> %s", ErrSymlinkEscape, rel, target)
	}
	return nil
}

// escapes follows the link at rel component by component through the composed
// tree (links included, at most 40 of them) and reports whether it leaves the app.
func escapes(merged map[string]Entry, rel string) bool {
	split := func(p string) []string { return strings.Split(p, "/") }
	var stack []string
	if d := path.Dir(rel); d != "." {
		stack = split(d)
	}
	parts := split(merged[rel].Node.Link)
	budget := 40
	for len(parts) > 0 {
		p := parts[0]
		parts = parts[1:]
		switch p {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return true
			}
			stack = stack[:len(stack)-1]
			continue
		}
		stack = append(stack, p)
		e, ok := merged[strings.Join(stack, "/")]
		if !ok || e.Node.Kind != Symlink {
			continue
		}
		if budget--; budget == 0 || path.IsAbs(e.Node.Link) {
			return true
		}
		stack = stack[:len(stack)-1]
		parts = append(split(e.Node.Link), parts...)
	}
	return false
}

// applyDeletes removes from merged what the layer's .slipway-delete lists.
// Each line is a path relative to the app, or a glob (path.Match syntax) matched
// against whole paths; a directory is removed with everything below it.
func applyDeletes(src Source, l Layer, nodes []Node, merged map[string]Entry, removeTree func(string)) ([]string, error) {
	has := false
	for _, n := range nodes {
		if n.Rel == config.DeleteFile && n.Kind == File {
			has = true
			break
		}
	}
	if !has {
		return nil, nil
	}
	file := path.Join(l.Dir, config.DeleteFile)
	data, err := src.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	var warnings []string
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		pat := strings.TrimSpace(sc.Text())
		if pat == "" || strings.HasPrefix(pat, "#") {
			continue
		}
		pat = strings.TrimSuffix(strings.TrimPrefix(pat, "./"), "/")
		where := fmt.Sprintf("%s:%d", file, line)
		if why := patternProblem(pat); why != "" {
			errs = append(errs, &PlanError{File: where, Err: fmt.Errorf("%w %q: %s", ErrBadDelete, pat, why)})
			continue
		}
		var hits []string
		for p := range merged {
			if ok, _ := path.Match(pat, p); ok {
				hits = append(hits, p)
			}
		}
		if len(hits) == 0 {
			warnings = append(warnings, fmt.Sprintf("%s: %q matches no inherited file", where, pat))
		}
		for _, p := range hits {
			removeTree(p)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return warnings, nil
}

func patternProblem(p string) string {
	if path.IsAbs(p) {
		return "must be relative to the app folder"
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return "must not contain '..'"
		}
		if el == "" || el == "." {
			return "has an empty or '.' path element"
		}
	}
	if _, err := path.Match(p, ""); err != nil {
		return "bad glob pattern"
	}
	return ""
}

// Fingerprint is the content hash of a composed app: paths, kinds, executable
// bits, contents (git blob ids) and link targets, sorted; never mtimes, owners or
// the umask, so it is the same on any machine for the same inputs. Directories are
// left out, as git leaves them out, so a commit's fingerprint needs only git ls-tree.
func (ap *AppPlan) Fingerprint(src Source) (string, error) {
	h := sha256.New()
	buf := make([]byte, 0, 256)
	for i := range ap.Entries {
		e := &ap.Entries[i]
		buf = buf[:0]
		switch e.Node.Kind {
		case File:
			id, err := src.Hash(&e.Node)
			if err != nil {
				return "", err
			}
			e.Node.Hash = id
			x := "- "
			if e.Node.Mode&0o111 != 0 {
				x = "x "
			}
			buf = append(append(append(append(append(buf, "f "...), x...), id...), ' '), e.Path...)
		case Symlink:
			buf = append(append(append(append(buf, "l "...), e.Node.Link...), ' '), e.Path...)
		default:
			continue
		}
		h.Write(append(buf, 0))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// isExec reports whether a mode has any executable bit.
func isExec(m fs.FileMode) bool { return m&0o111 != 0 }
