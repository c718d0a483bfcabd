package proxy

import (
	"io/fs"
	"path"
	"strings"
)

// A release's files never change, so the site learns them all once, when
// it is deployed (before it gets traffic, like a gate): every servable URL
// path is in the site's table with its type, ETag, Last-Modified, caching
// header, precompressed variants and, for small files, contents. A request
// then costs no system call but opening a big file, and a path that names
// no file (a scanner trying thousands) is a 404 from memory. A site too
// big to learn at once, or one with a symlinked directory, is still
// served: what the table lacks is looked up on disk as it is asked for.

// Bounds of the table learnt at deploy.
const (
	indexMaxFiles = 20_000
	indexMaxBytes = 1 << 30 // read and hashed at deploy
)

// index learns every servable file; it marks the site indexed when the
// table is complete.
func (s *staticSite) index() {
	if s.root == nil {
		return
	}
	var files int
	var size int64
	complete := true
	err := fs.WalkDir(s.root.FS(), ".", func(name string, e fs.DirEntry, err error) error {
		if err != nil {
			complete = false
			return nil
		}
		if name != "." && strings.HasPrefix(e.Name(), ".") && e.Name() != ".well-known" {
			if e.IsDir() {
				return fs.SkipDir // never served
			}
			return nil
		}
		if e.IsDir() {
			return nil
		}
		if e.Type()&fs.ModeSymlink != 0 {
			// os.Root follows a link only inside the site.
			fi, err := s.root.Stat(name)
			if err == nil && fi.IsDir() {
				complete = false // the walk does not follow it; disk lookups will
			}
			if err != nil || !fi.Mode().IsRegular() {
				return nil
			}
		} else if !e.Type().IsRegular() {
			return nil
		}
		if files++; files > indexMaxFiles {
			complete = false
			return fs.SkipAll
		}
		for _, key := range urlPaths(name) {
			if f := s.lookup(key); f != nil && f.name == name {
				size += f.size
			}
		}
		if size > indexMaxBytes {
			complete = false
			return fs.SkipAll
		}
		return nil
	})
	if err == nil && complete {
		s.indexed.Store(true)
	}
}

// urlPaths are the request paths that may name the file at name (see
// staticSite.find): "/a.js"; "/about" for about.html; "/docs/" and
// "/docs" for docs/index.html.
func urlPaths(name string) []string {
	out := []string{"/" + name}
	if strings.HasSuffix(name, ".html") {
		out = append(out, "/"+strings.TrimSuffix(name, ".html"))
	}
	if path.Base(name) == "index.html" {
		if dir := path.Dir(name); dir == "." {
			out = append(out, "/")
		} else {
			out = append(out, "/"+dir+"/", "/"+dir)
		}
	}
	return out
}

// indexedLookup answers a path the complete table does not hold as it is
// sent: it may still name a file once cleaned ("//a.js", "/docs/./").
func (s *staticSite) indexedLookup(p string) *staticFile {
	if strings.ContainsAny(p, "\x00\\") {
		return nil
	}
	c := path.Clean("/" + p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	if c == p {
		return nil
	}
	if f, ok := s.files.Load(c); ok {
		return f.(*staticFile)
	}
	return nil
}

// indexStatics learns the files of the new sites of a cutover, one at a
// time, before their gate.
func indexStatics(ps []*pending) {
	for _, p := range ps {
		if p.next.static != nil {
			p.next.static.index()
		}
	}
}
