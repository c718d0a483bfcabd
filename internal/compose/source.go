// Package compose materialises stores by file-based inheritance: for each app of a
// store, every file is taken from the nearest layer that has it — the store, its
// parent, ..., the base app — into .out/<store>/<app>, atomically and incrementally.
package compose

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
)

// Kind is the type of a tree entry.
type Kind byte

const (
	// File is a regular file.
	File Kind = 'f'
	// Dir is a directory.
	Dir Kind = 'd'
	// Symlink is a symbolic link.
	Symlink Kind = 'l'
)

// Node is one entry of a source layer.
type Node struct {
	// Rel is the slash path relative to the layer's directory.
	Rel  string
	Kind Kind
	// Mode holds permission bits plus setuid/setgid/sticky.
	Mode fs.FileMode
	Size int64
	// Link is a symlink's target.
	Link string
	// Src locates the content: an absolute path for the working tree, a repo-relative path for git.
	Src string
	// Stat identifies the working-tree file's version for the hash cache; zero for git.
	Stat StatKey
	// Hash is the git blob id of the content when already known.
	Hash string
}

// StatKey identifies one version of a working-tree file without reading it.
type StatKey struct {
	Dev, Ino     uint64
	Size         int64
	Mtime, Ctime int64
	Mode         uint32
}

// Source lists layer directories and reads files: the working tree, or a git commit.
type Source interface {
	// List returns every entry below dir (repo-relative, slash-separated), sorted by
	// Rel, skipping names in skip at any depth. A missing dir gives no entries.
	List(dir string, skip map[string]bool) ([]Node, error)
	// ReadFile returns a file's content by repo-relative path.
	ReadFile(p string) ([]byte, error)
	// Hash returns the git blob id of a file node's content.
	Hash(n *Node) (string, error)
}

// BlobID returns the git blob id of content, which lets hashes of the working
// tree and of a commit (git ls-tree) be compared without reading blobs.
func BlobID(content []byte) string {
	h := sha1.New()
	h.Write([]byte("blob " + strconv.Itoa(len(content)) + "\x00"))
	h.Write(content)
	return hex.EncodeToString(h.Sum(nil))
}

func blobIDReader(r io.Reader, size int64) (string, error) {
	h := sha1.New()
	h.Write([]byte("blob " + strconv.FormatInt(size, 10) + "\x00"))
	n, err := io.Copy(h, r)
	if err != nil {
		return "", err
	}
	if n != size {
		return "", fmt.Errorf("file changed size while being read (%d of %d bytes)", n, size)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ErrUnsupported marks a source entry Slipway refuses to compose (device, socket, pipe).
var ErrUnsupported = errors.New("unsupported file type")

// WorkTree is the Source for a directory on disk. Its hash cache is keyed by stat
// so that unchanged files are read at most once per run and never on a re-run that
// loads a saved cache.
type WorkTree struct {
	root string

	mu     sync.Mutex
	hashes map[string]hashEntry // by absolute path
	dirty  bool
}

type hashEntry struct {
	Key  StatKey
	Hash string
}

// NewWorkTree returns a Source for the directory root.
func NewWorkTree(root string) *WorkTree {
	return &WorkTree{root: root, hashes: map[string]hashEntry{}}
}

// Root returns the absolute root directory.
func (w *WorkTree) Root() string { return w.root }

// List implements Source.
func (w *WorkTree) List(dir string, skip map[string]bool) ([]Node, error) {
	base := filepath.Join(w.root, filepath.FromSlash(dir))
	st, err := os.Lstat(base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", dir)
	}
	var out []Node
	var walk func(rel string) error
	walk = func(rel string) error {
		d := filepath.Join(base, filepath.FromSlash(rel))
		f, err := os.Open(d)
		if err != nil {
			return err
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return fmt.Errorf("reading %s: %w", d, err)
		}
		sort.Strings(names)
		for _, name := range names {
			if skip[name] {
				continue
			}
			r := name
			if rel != "" {
				r = rel + "/" + name
			}
			full := filepath.Join(d, name)
			fi, err := os.Lstat(full)
			if err != nil {
				return err
			}
			n := Node{Rel: r, Src: full, Mode: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
			if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
				n.Stat = statKey(sys)
			}
			switch {
			case fi.Mode().IsRegular():
				n.Kind, n.Size = File, fi.Size()
				out = append(out, n)
			case fi.IsDir():
				n.Kind = Dir
				out = append(out, n)
				if err := walk(r); err != nil {
					return err
				}
			case fi.Mode()&fs.ModeSymlink != 0:
				n.Kind = Symlink
				if n.Link, err = os.Readlink(full); err != nil {
					return err
				}
				out = append(out, n)
			default:
				return fmt.Errorf("%s: %w (%s)", path.Join(dir, r), ErrUnsupported, fi.Mode().Type())
			}
		}
		return nil
	}
	if err := walk(""); err != nil {
		return nil, err
	}
	sortNodes(out)
	return out, nil
}

func sortNodes(ns []Node) { sort.Slice(ns, func(i, j int) bool { return ns[i].Rel < ns[j].Rel }) }

// ReadFile implements Source.
func (w *WorkTree) ReadFile(p string) ([]byte, error) {
	return os.ReadFile(filepath.Join(w.root, filepath.FromSlash(p)))
}

// Hash implements Source, reading the file only when its stat changed since it was last hashed.
func (w *WorkTree) Hash(n *Node) (string, error) {
	if h, ok := w.cached(n); ok {
		return h, nil
	}
	f, err := os.Open(n.Src)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h, err := blobIDReader(f, n.Size)
	if err != nil {
		return "", fmt.Errorf("hashing %s: %w", n.Src, err)
	}
	w.remember(n, h)
	return h, nil
}

func (w *WorkTree) cached(n *Node) (string, bool) {
	if n.Hash != "" {
		return n.Hash, true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	e, ok := w.hashes[n.Src]
	if ok && e.Key == n.Stat && n.Stat.Ino != 0 {
		return e.Hash, true
	}
	return "", false
}

func (w *WorkTree) remember(n *Node, h string) {
	if n.Stat.Ino == 0 {
		return
	}
	w.mu.Lock()
	w.hashes[n.Src] = hashEntry{Key: n.Stat, Hash: h}
	w.dirty = true
	w.mu.Unlock()
}
