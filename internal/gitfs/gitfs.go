// Package gitfs reads a directory of a git commit as an io/fs.FS, so config
// loading and composition planning work on a past commit exactly as on the
// working tree, without checking anything out.
package gitfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"path"
	"sort"
	"strings"
	"sync"
	"time"
)

// Entry is one object of the tree.
type Entry struct {
	// Mode is git's mode: 100644, 100755, 120000 (symlink), 040000 (tree), 160000 (submodule).
	Mode string
	// Hash is the object id.
	Hash string
}

// IsDir reports whether the entry is a tree.
func (e Entry) IsDir() bool { return e.Mode == "040000" }

// IsSymlink reports whether the entry is a symbolic link.
func (e Entry) IsSymlink() bool { return e.Mode == "120000" }

// IsFile reports whether the entry is a regular file.
func (e Entry) IsFile() bool { return e.Mode == "100644" || e.Mode == "100755" }

// Tree is a directory of one commit. It implements fs.FS, fs.ReadDirFS, fs.ReadFileFS and fs.StatFS.
type Tree struct {
	ctx      context.Context
	toplevel string
	// Commit is the resolved commit id.
	Commit  string
	entries map[string]Entry    // by slash path relative to the tree's root
	dirs    map[string][]string // child names by dir ("." for the root)

	mu    sync.Mutex
	blobs map[string][]byte
	// batch, when set, reads blobs without a git process each (OpenBatch).
	batch *Batch
}

// ErrNoRef means the ref does not name a commit.
var ErrNoRef = errors.New("not a commit")

// Open reads the tree of ref at dir, a directory inside a git work tree.
// Paths in the returned FS are relative to dir.
func Open(ctx context.Context, dir, ref string) (*Tree, error) {
	top, err := git(ctx, dir, "rev-parse", "--show-toplevel")
	if err != nil {
		return nil, fmt.Errorf("%s is not in a git repository: %w", dir, err)
	}
	prefix, err := git(ctx, dir, "rev-parse", "--show-prefix")
	if err != nil {
		return nil, err
	}
	t := &Tree{ctx: ctx, toplevel: strings.TrimSpace(string(top)), entries: map[string]Entry{}, dirs: map[string][]string{}, blobs: map[string][]byte{}}
	commit, err := git(ctx, t.toplevel, "rev-parse", "--verify", "--quiet", "--end-of-options", ref+"^{commit}")
	if err != nil {
		return nil, fmt.Errorf("--since %s: %w", ref, ErrNoRef)
	}
	t.Commit = strings.TrimSpace(string(commit))
	return t, t.read(strings.TrimSuffix(strings.TrimSpace(string(prefix)), "/"), false)
}

// read lists the commit's tree below prefix ("" for the whole tree); strict
// fails when git cannot list it instead of reading it as an empty directory.
func (t *Tree) read(prefix string, strict bool) error {
	ctx := t.ctx
	treeish := t.Commit
	if prefix != "" {
		treeish += ":" + prefix
	}
	t.dirs["."] = nil
	out, err := git(ctx, t.toplevel, "ls-tree", "-r", "-t", "-z", treeish)
	if err != nil && strict {
		return fmt.Errorf("listing %s: %w", t.Commit, err)
	}
	if err != nil {
		// The directory did not exist at that commit: an empty tree.
		return nil
	}
	for _, rec := range bytes.Split(out, []byte{0}) {
		if len(rec) == 0 {
			continue
		}
		meta, name, ok := bytes.Cut(rec, []byte{'\t'})
		if !ok {
			continue
		}
		f := strings.Fields(string(meta))
		if len(f) != 3 {
			continue
		}
		p := string(name)
		t.entries[p] = Entry{Mode: f[0], Hash: f[2]}
		parent := path.Dir(p)
		t.dirs[parent] = append(t.dirs[parent], path.Base(p))
		if f[0] == "040000" {
			if _, ok := t.dirs[p]; !ok {
				t.dirs[p] = nil
			}
		}
	}
	for d := range t.dirs {
		sort.Strings(t.dirs[d])
	}
	return nil
}

func git(ctx context.Context, dir string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			return nil, fmt.Errorf("git %s: %w", args[0], err)
		}
		return nil, fmt.Errorf("git %s: %s", args[0], msg)
	}
	return out, nil
}

// Entry returns the entry at p.
func (t *Tree) Entry(p string) (Entry, bool) {
	e, ok := t.entries[p]
	return e, ok
}

// Children returns the sorted child names of directory p ("." for the root).
func (t *Tree) Children(p string) ([]string, bool) {
	c, ok := t.dirs[p]
	return c, ok
}

// Blob returns an object's content.
func (t *Tree) Blob(hash string) ([]byte, error) {
	t.mu.Lock()
	b, ok := t.blobs[hash]
	t.mu.Unlock()
	if ok {
		return b, nil
	}
	b, err := t.readBlob(hash)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.blobs[hash] = b
	t.mu.Unlock()
	return b, nil
}

func (t *Tree) readBlob(hash string) ([]byte, error) {
	if t.batch == nil {
		return git(t.ctx, t.toplevel, "cat-file", "blob", hash)
	}
	o, err := t.batch.Object(t.ctx, hash)
	if err != nil {
		return nil, err
	}
	if o.Type != "blob" {
		return nil, fmt.Errorf("object %s is a %s, not a blob", hash, o.Type)
	}
	return o.Data, nil
}

func (t *Tree) lookup(op, name string) (Entry, bool, error) {
	if !fs.ValidPath(name) {
		return Entry{}, false, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return Entry{Mode: "040000"}, true, nil
	}
	e, ok := t.entries[name]
	if !ok {
		return Entry{}, false, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return e, true, nil
}

// Stat implements fs.StatFS.
func (t *Tree) Stat(name string) (fs.FileInfo, error) {
	e, _, err := t.lookup("stat", name)
	if err != nil {
		return nil, err
	}
	return info{name: path.Base(name), e: e}, nil
}

// ReadFile implements fs.ReadFileFS.
func (t *Tree) ReadFile(name string) ([]byte, error) {
	e, _, err := t.lookup("read", name)
	if err != nil {
		return nil, err
	}
	if e.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	b, err := t.Blob(e.Hash)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return append([]byte(nil), b...), nil
}

// ReadDir implements fs.ReadDirFS.
func (t *Tree) ReadDir(name string) ([]fs.DirEntry, error) {
	e, _, err := t.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	if !e.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	var out []fs.DirEntry
	for _, c := range t.dirs[name] {
		p := c
		if name != "." {
			p = name + "/" + c
		}
		out = append(out, fs.FileInfoToDirEntry(info{name: c, e: t.entries[p]}))
	}
	return out, nil
}

// Open implements fs.FS.
func (t *Tree) Open(name string) (fs.File, error) {
	e, _, err := t.lookup("open", name)
	if err != nil {
		return nil, err
	}
	fi := info{name: path.Base(name), e: e}
	if e.IsDir() {
		entries, err := t.ReadDir(name)
		if err != nil {
			return nil, err
		}
		return &dirFile{info: fi, entries: entries}, nil
	}
	b, err := t.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return &file{info: fi, Reader: bytes.NewReader(b)}, nil
}

type info struct {
	name string
	e    Entry
}

func (i info) Name() string { return i.name }
func (i info) Size() int64  { return 0 }
func (i info) Mode() fs.FileMode {
	switch i.e.Mode {
	case "040000", "160000":
		return fs.ModeDir | 0o755
	case "120000":
		return fs.ModeSymlink | 0o777
	case "100755":
		return 0o755
	}
	return 0o644
}
func (i info) ModTime() time.Time { return time.Time{} }
func (i info) IsDir() bool        { return i.Mode().IsDir() }
func (i info) Sys() any           { return i.e }

type file struct {
	info info
	*bytes.Reader
}

func (f *file) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *file) Close() error               { return nil }

type dirFile struct {
	info    info
	entries []fs.DirEntry
	off     int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Close() error               { return nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errors.New("is a directory")}
}
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(rest))
	d.off += n
	return rest[:n], nil
}

var (
	_ fs.ReadDirFS  = (*Tree)(nil)
	_ fs.ReadFileFS = (*Tree)(nil)
	_ fs.StatFS     = (*Tree)(nil)
)
