package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// entry is what a tree holds at one path.
type entry struct {
	mode fs.FileMode // type and permission bits, as Lstat reports them
	link string
}

// scan lists every entry below root by slash path relative to root.
func scan(root string, skip func(rel string) bool) (map[string]entry, error) {
	out := map[string]entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e := entry{mode: fi.Mode()}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if e.link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		out[rel] = e
		return nil
	})
	return out, err
}

// problems collects differences, keeping the first few for the message.
type problems struct {
	mu   sync.Mutex
	n    int
	list []string
}

func (p *problems) add(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	if len(p.list) < 12 {
		p.list = append(p.list, fmt.Sprintf(format, args...))
	}
}

func (p *problems) err(what string) error {
	if p.n == 0 {
		return nil
	}
	return fmt.Errorf("%s: %d difference(s):\n  %s", what, p.n, strings.Join(p.list, "\n  "))
}

// sameContent compares two files byte for byte, in parallel over pairs.
func sameContent(pairs [][2]string, label func(i int) string, pr *problems) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				a, errA := os.ReadFile(pairs[i][0])
				b, errB := os.ReadFile(pairs[i][1])
				switch {
				case errA != nil || errB != nil:
					pr.add("%s: %v", label(i), errors.Join(errA, errB))
				case !bytes.Equal(a, b):
					pr.add("%s: contents differ (%d vs %d bytes)", label(i), len(a), len(b))
				}
			}
		}()
	}
	for i := range pairs {
		next <- i
	}
	close(next)
	wg.Wait()
}

// compareTrees checks that a and b hold the same paths, types, modes, link targets
// and file contents. It returns the number of files compared.
func compareTrees(a, b string) (int, error) {
	ta, err := scan(a, nil)
	if err != nil {
		return 0, err
	}
	tb, err := scan(b, nil)
	if err != nil {
		return 0, err
	}
	pr := &problems{}
	var pairs [][2]string
	var rels []string
	for _, rel := range sortedKeys(ta) {
		ea := ta[rel]
		eb, ok := tb[rel]
		switch {
		case !ok:
			pr.add("%s: only in %s", rel, a)
		case ea.mode != eb.mode:
			pr.add("%s: mode %v vs %v", rel, ea.mode, eb.mode)
		case ea.link != eb.link:
			pr.add("%s: link %q vs %q", rel, ea.link, eb.link)
		case ea.mode.IsRegular():
			pairs = append(pairs, [2]string{filepath.Join(a, rel), filepath.Join(b, rel)})
			rels = append(rels, rel)
		}
	}
	for _, rel := range sortedKeys(tb) {
		if _, ok := ta[rel]; !ok {
			pr.add("%s: only in %s", rel, b)
		}
	}
	sameContent(pairs, func(i int) string { return rels[i] }, pr)
	return len(pairs), pr.err(fmt.Sprintf("%s and %s differ", a, b))
}

// verifyModel checks .out against the composition the generator defines: for every
// deployable store exactly the expected files, each with the mode and content of
// the nearest layer's file, in directories of mode 0755; nothing else in .out but
// the stores, slipway's state directory and the .gitignore that keeps .out out of
// git. It returns the number of files checked.
func verifyModel(m *model, out string) (int, error) {
	pr := &problems{}
	top, err := os.ReadDir(out)
	if err != nil {
		return 0, err
	}
	want := map[string]bool{".slipway": true, ".gitignore": true}
	for _, id := range m.deployable() {
		want[id] = true
	}
	for _, e := range top {
		if !want[e.Name()] {
			pr.add("%s: unexpected entry in %s", e.Name(), out)
		}
	}
	var pairs [][2]string
	var labels []string
	for _, id := range m.deployable() {
		exp := m.expected(id)
		dirs := map[string]bool{}
		for rel := range exp {
			for d := path.Dir(rel); d != "."; d = path.Dir(d) {
				dirs[d] = true
			}
		}
		got, err := scan(filepath.Join(out, id), nil)
		if err != nil {
			return 0, err
		}
		for rel, e := range got {
			_, isFile := exp[rel]
			switch {
			case dirs[rel]:
				if e.mode != fs.ModeDir|0o755 {
					pr.add("%s/%s: directory mode %v, want drwxr-xr-x", id, rel, e.mode)
				}
			case !isFile:
				pr.add("%s/%s: not in the expected composition", id, rel)
			}
		}
		for _, rel := range sortedKeys(exp) {
			e, ok := got[rel]
			src := filepath.Join(m.Root, filepath.FromSlash(exp[rel]))
			if !ok {
				pr.add("%s/%s: missing (from %s)", id, rel, exp[rel])
				continue
			}
			fi, err := os.Lstat(src)
			if err != nil {
				return 0, err
			}
			if e.mode != fi.Mode() {
				pr.add("%s/%s: mode %v, source %s has %v", id, rel, e.mode, exp[rel], fi.Mode())
				continue
			}
			pairs = append(pairs, [2]string{filepath.Join(out, id, filepath.FromSlash(rel)), src})
			labels = append(labels, id+"/"+rel+" vs "+exp[rel])
		}
		for d := range dirs {
			if _, ok := got[d]; !ok {
				pr.add("%s/%s: directory missing", id, d)
			}
		}
	}
	sameContent(pairs, func(i int) string { return labels[i] }, pr)
	return len(pairs), pr.err("the composed tree is not the expected composition")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
