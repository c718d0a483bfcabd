package dockerbuild

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// IgnoreFile lists context paths the engine never sees, as docker build reads it.
const IgnoreFile = ".dockerignore"

// contextTime is every context file's mtime: the context digest (and so the
// fingerprint and BuildKit's cache key for the upload) then depends on the
// files' contents, modes and names only, not on when compose wrote them.
// After 1980 so that tools writing zip files inside a build accept it.
var contextTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Context is a build context: a directory minus what its .dockerignore
// excludes (the Dockerfile and .dockerignore themselves are always sent, as
// docker build does).
type Context struct {
	Dir        string
	Dockerfile string // slash path relative to Dir
	files      []string
}

// NewContext lists dir's context files in a stable order.
func NewContext(dir, dockerfile string) (*Context, error) {
	pm, err := ignoreMatcher(dir)
	if err != nil {
		return nil, err
	}
	c := &Context{Dir: dir, Dockerfile: filepath.ToSlash(dockerfile)}
	keep := map[string]bool{c.Dockerfile: true, IgnoreFile: true}
	parents := map[string]patternmatcher.MatchInfo{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if pm != nil && !keep[rel] {
			parent := parents[filepath.ToSlash(filepath.Dir(rel))]
			skip, info, err := pm.MatchesUsingParentResults(rel, parent)
			if err != nil {
				return fmt.Errorf("%s: %w", IgnoreFile, err)
			}
			if d.IsDir() {
				parents[rel] = info
			}
			if skip {
				if d.IsDir() && !pm.Exclusions() && !keepUnder(keep, rel) {
					return filepath.SkipDir
				}
				return nil
			}
		}
		c.files = append(c.files, rel)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the build context %s: %w", dir, err)
	}
	sort.Strings(c.files)
	return c, nil
}

// keepUnder reports whether a file that is always sent lies under dir.
func keepUnder(keep map[string]bool, dir string) bool {
	for k := range keep {
		if strings.HasPrefix(k, dir+"/") {
			return true
		}
	}
	return false
}

func ignoreMatcher(dir string) (*patternmatcher.PatternMatcher, error) {
	f, err := os.Open(filepath.Join(dir, IgnoreFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(dir, IgnoreFile), err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, IgnoreFile), err)
	}
	return pm, nil
}

// Files are the context's paths, slash-separated, sorted.
func (c *Context) Files() []string { return c.files }

// Digest is DigestCached without a cache.
func (c *Context) Digest() (string, error) { return c.DigestCached("") }

// WriteTar writes the context as the engine's build API takes it.
func (c *Context) WriteTar(w io.Writer) error {
	tw := tar.NewWriter(w)
	for _, rel := range c.files {
		if err := c.writeEntry(tw, rel); err != nil {
			return fmt.Errorf("build context %s: %w", rel, err)
		}
	}
	return tw.Close()
}

func (c *Context) writeEntry(tw *tar.Writer, rel string) error {
	p := filepath.Join(c.Dir, filepath.FromSlash(rel))
	st, err := os.Lstat(p)
	if err != nil {
		return err
	}
	link := ""
	if st.Mode()&fs.ModeSymlink != 0 {
		if link, err = os.Readlink(p); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(st, link)
	if err != nil {
		return err
	}
	hdr.Name = rel
	if st.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = contextTime, time.Time{}, time.Time{}
	hdr.Format = tar.FormatPAX
	hdr.PAXRecords = nil
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}
