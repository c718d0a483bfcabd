package compose

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
)

// undo is one applied step of an incremental update, reversible until commit.
type undo func() error

// incremental updates dir in place: only entries whose content, kind or mode
// differ are written (first into a staging area), then moved in with renames. The
// replaced and removed entries are moved to a backup area first, so a failure
// part-way puts every moved entry back and leaves the previous tree as it was.
func (c *Composer) incremental(ctx context.Context, dir string, ws []want, m *manifest, existing map[string]scanned, workers int) (*manifest, int, int, error) {
	wanted := make(map[string]*Node, len(ws))
	for _, w := range ws {
		wanted[w.path] = w.node
	}
	// 1. What on disk must go: not wanted, of the wrong kind, or not provably what we wrote.
	var gone []string
	for p, s := range existing {
		n, ok := wanted[p]
		if !ok || n.Kind != s.Kind {
			gone = append(gone, p)
			continue
		}
		if n.Kind != Dir && !upToDate(n, m.Files[p], s) {
			gone = append(gone, p)
		}
	}
	sort.Strings(gone)
	goneSet := map[string]bool{}
	var moves []string // top-most paths to move aside
	for _, p := range gone {
		if underAny(p, goneSet) {
			continue
		}
		goneSet[p] = true
		moves = append(moves, p)
	}
	present := func(p string) bool {
		_, ok := existing[p]
		return ok && (len(goneSet) == 0 || !goneSet[p] && !underAny(p, goneSet))
	}
	// 2. What must be created, and directory modes to fix.
	var mkdirs, chmods []want
	var writes []want
	for _, w := range ws {
		switch {
		case w.node.Kind == Dir && !present(w.path):
			mkdirs = append(mkdirs, w)
		case w.node.Kind == Dir:
			if existing[w.path].Mode != w.node.Mode {
				chmods = append(chmods, w)
			}
		case !present(w.path):
			writes = append(writes, w)
		}
	}
	newM := &manifest{Version: manifestVersion, Files: make(map[string]outEntry, len(ws))}
	for _, w := range ws {
		if w.node.Kind == Dir {
			newM.Files[w.path] = outEntry{Kind: Dir, Mode: w.node.Mode}
		} else if present(w.path) {
			newM.Files[w.path] = m.Files[w.path]
		}
	}
	removed := 0
	for _, p := range moves {
		if _, ok := wanted[p]; !ok {
			removed++
		}
	}
	if len(moves) == 0 && len(mkdirs) == 0 && len(chmods) == 0 && len(writes) == 0 {
		if len(m.Files) == len(newM.Files) {
			return nil, 0, 0, nil // nothing changed, not even the manifest
		}
		return newM, 0, 0, nil
	}

	// 3. Stage new content outside the tree; nothing in dir changes until all of it is written.
	stage := filepath.Join(c.stateDir(), "tmp", filepath.Base(dir)+"-stage-"+randomSuffix())
	if err := os.Mkdir(stage, 0o755); err != nil {
		return nil, 0, 0, err
	}
	defer removeAllWritable(stage)
	staged := make([]string, len(writes))
	idx := make([]int, len(writes))
	for i := range idx {
		idx[i] = i
	}
	var mu sync.Mutex
	err := parallel(ctx, workers, idx, func(i int) error {
		p := filepath.Join(stage, strconv.Itoa(i))
		e, err := c.writeEntry(p, writes[i].node)
		if err != nil {
			return err
		}
		mu.Lock()
		staged[i] = p
		newM.Files[writes[i].path] = e
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, 0, 0, err
	}

	// 4. Apply with an undo log.
	backup := filepath.Join(c.stateDir(), "tmp", filepath.Base(dir)+"-backup-"+randomSuffix())
	if err := os.Mkdir(backup, 0o755); err != nil {
		return nil, 0, 0, err
	}
	var log []undo
	rollback := func(cause error) error {
		var errs []error
		for i := len(log) - 1; i >= 0; i-- {
			if err := log[i](); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("%w (and restoring the previous tree failed: %v; its files are in %s)", cause, errors.Join(errs...), backup)
		}
		removeAllWritable(backup)
		return cause
	}
	abs := func(p string) string { return filepath.Join(dir, filepath.FromSlash(p)) }
	for i, p := range moves {
		from, to := abs(p), filepath.Join(backup, strconv.Itoa(i))
		if err := os.Rename(from, to); err != nil {
			return nil, 0, 0, rollback(err)
		}
		log = append(log, func() error { return os.Rename(to, from) })
	}
	for _, w := range mkdirs {
		p := abs(w.path)
		if err := os.Mkdir(p, 0o755); err != nil {
			return nil, 0, 0, rollback(err)
		}
		log = append(log, func() error { return os.RemoveAll(p) })
		if w.node.Mode != 0o755 {
			chmods = append(chmods, w)
		}
	}
	for i, w := range writes {
		p := abs(w.path)
		if err := os.Rename(staged[i], p); err != nil {
			return nil, 0, 0, rollback(err)
		}
		log = append(log, func() error { return os.Remove(p) })
		// A rename changes the inode's ctime: record the stat the file has in place.
		st, _, _, err := lstatKey(p)
		if err != nil {
			return nil, 0, 0, rollback(err)
		}
		e := newM.Files[w.path]
		e.Stat = st
		newM.Files[w.path] = e
	}
	sort.Slice(chmods, func(i, j int) bool { return chmods[i].path > chmods[j].path })
	for _, w := range chmods {
		p := abs(w.path)
		old := existing[w.path].Mode
		if err := os.Chmod(p, w.node.Mode); err != nil {
			return nil, 0, 0, rollback(err)
		}
		if _, had := existing[w.path]; had {
			log = append(log, func() error { return os.Chmod(p, old) })
		}
	}
	if err := removeAllWritable(backup); err != nil {
		return nil, 0, 0, fmt.Errorf("removing replaced files: %w", err)
	}
	return newM, len(writes), removed, nil
}

// upToDate reports whether the file on disk (s) is exactly what the manifest says
// was written (r), and that is what is wanted now (n).
//
// ctime is left out: hard-linking a composed file (as .deploy collection does)
// changes it without changing the file.
func upToDate(n *Node, r outEntry, s scanned) bool {
	a, b := r.Stat, s.Stat
	a.Ctime, b.Ctime = 0, 0
	if r.Kind != n.Kind || a != b {
		return false
	}
	switch n.Kind {
	case File:
		return r.Hash == n.Hash && r.Mode == n.Mode && s.Mode == n.Mode
	case Symlink:
		return r.Link == n.Link
	}
	return false
}

func underAny(p string, set map[string]bool) bool {
	for d := parentOf(p); d != ""; d = parentOf(d) {
		if set[d] {
			return true
		}
	}
	return false
}
