package proxy

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// StaticSite is a release's files served by the router itself: an app
// with `static: DIR`, which runs no process.
type StaticSite struct {
	// Dir is the directory on disk (the release's unpacked files); nothing
	// outside it is ever served, whatever the request path or a symlink says.
	Dir string `json:"dir"`
	// SPA answers paths that name no file with index.html (client-side
	// routing) instead of 404.
	SPA bool `json:"spa,omitempty"`
}

// staticSite serves one release's files. Files of a release never change,
// so what it learns about a file (type, ETag, variants, small contents) is
// kept for the life of the release.
type staticSite struct {
	spec StaticSite
	root *os.Root

	files  sync.Map     // request path -> *staticFile, nil for "no such file"
	byName sync.Map     // file name in the root -> *staticFile, one per file
	count  atomic.Int64 // entries in files
	held   atomic.Int64 // bytes of small files kept in memory
	// indexed: files holds every servable path (static_index.go), so a
	// path it lacks names no file.
	indexed atomic.Bool
	// Files kept open for sendfile (static_sendfile.go), closed at the drain.
	fdMu sync.Mutex
	fds  []*os.File
	kept map[string]*keptFile // by name in the root

	// Requests in flight, for the drain that closes root (static_drain.go).
	inflight  atomic.Int64
	draining  atomic.Bool
	idle      chan struct{}
	closeOnce sync.Once
}

// staticFile is what the site knows about one servable file.
type staticFile struct {
	name     string // path inside the root
	size     int64
	modTime  time.Time
	etag     string
	ctype    string
	cache    string
	data     []byte    // whole contents, for small files
	fd       *keptFile // open for sendfile (static_sendfile.go)
	variants []variant
	// Header values built once: a hit assigns them without allocating.
	hType, hCache, hTag, hMod, hLen []string
	// head is the whole 200 head but Date, for the Front (static_sendfile.go).
	head []byte
}

var (
	hNosniff = []string{"nosniff"}
	hVary    = []string{"Accept-Encoding"}
)

// prepare builds the header values of f and its variants.
func (f *staticFile) prepare() {
	for i, x := range append([]*staticFile{f}, variantFiles(f)...) {
		x.hType, x.hCache, x.hTag = []string{f.ctype}, []string{f.cache}, []string{x.etag}
		x.hMod = []string{x.modTime.UTC().Format(http.TimeFormat)}
		x.hLen = []string{strconv.FormatInt(x.size, 10)}
		enc := ""
		if i > 0 {
			enc = f.variants[i-1].encoding
		}
		x.head = prebuiltHead(x, len(f.variants) > 0, enc)
	}
}

func variantFiles(f *staticFile) []*staticFile {
	var out []*staticFile
	for _, v := range f.variants {
		out = append(out, v.file)
	}
	return out
}

// variant is a precompressed sibling: app.js.br for app.js.
type variant struct {
	encoding string
	file     *staticFile
}

// Small files are kept in memory (up to a budget per release), so that a
// hit costs no open, stat or read system call.
const (
	staticSmallFile = 64 << 10
	staticMemBudget = 64 << 20
)

// openStatic opens a site's directory; it must hold at least one file.
func openStatic(spec StaticSite) (*staticSite, error) {
	dir, err := filepath.Abs(spec.Dir)
	if err != nil {
		return nil, fmt.Errorf("static site %s: %w", spec.Dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("static site: %w", err)
	}
	spec.Dir = dir
	return &staticSite{spec: spec, root: root, idle: make(chan struct{}, 1)}, nil
}

// check proves the site servable before it gets traffic, as the health
// gate does for processes: index.html (or, failing that, any file) exists.
func (s *staticSite) check() error {
	if fi, err := s.root.Stat("index.html"); err == nil && fi.Mode().IsRegular() {
		return nil
	}
	ents, err := fs.ReadDir(s.root.FS(), ".")
	if err != nil {
		return fmt.Errorf("static site %s: %w", s.spec.Dir, err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			return nil
		}
	}
	return fmt.Errorf("static site %s: no index.html and no file at the top", s.spec.Dir)
}

// serve answers a request from the site's files and returns the status and
// body bytes.
func (s *staticSite) serve(r *Router, w http.ResponseWriter, req *http.Request) (int, int64) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		r.errorPage(w, req, http.StatusMethodNotAllowed, "This site only serves files.")
		return http.StatusMethodNotAllowed, 0
	}
	status := http.StatusOK
	f := s.lookup(req.URL.Path)
	if f == nil && s.spec.SPA && wantsPage(req) {
		f = s.lookup("/")
	}
	if f == nil {
		if f = s.lookup("/404.html"); f == nil {
			r.errorPage(w, req, http.StatusNotFound, "There is no page at this address.")
			return http.StatusNotFound, 0
		}
		status = http.StatusNotFound
	}
	return s.send(w, req, f, status)
}

// wantsPage says whether a missing path is a page (client-side route)
// rather than an asset: no file extension in its last segment.
func wantsPage(req *http.Request) bool {
	return !strings.Contains(path.Base(req.URL.Path), ".")
}

// lookup finds the file for a request path (already decoded by net/http:
// %2e%2e is ".." here). The path is cleaned as if rooted, so ".." can
// never climb above the site, and os.Root refuses anything that would
// leave the directory, symlinks included. Dot files (but .well-known) are
// not served, nor directories (no listings): "/docs/" serves
// docs/index.html, "/about" also tries about.html.
func (s *staticSite) lookup(p string) *staticFile {
	if f, ok := s.files.Load(p); ok {
		return f.(*staticFile)
	}
	if s.indexed.Load() {
		return s.indexedLookup(p) // no system call for a miss
	}
	f := s.find(p)
	// Bounded, so that scanning for random paths cannot grow it forever.
	if s.count.Load() < 100_000 {
		if _, loaded := s.files.LoadOrStore(p, f); !loaded {
			s.count.Add(1)
		}
	}
	return f
}

func (s *staticSite) find(p string) *staticFile {
	for _, name := range fileCandidates(p) {
		if f, ok := s.byName.Load(name); ok {
			return f.(*staticFile) // the same file under another path
		}
		if f := s.load(name); f != nil {
			f.variants = s.variants(name)
			f.prepare()
			f1, _ := s.byName.LoadOrStore(name, f)
			return f1.(*staticFile)
		}
	}
	return nil
}

// fileCandidates are the names in the root that may answer the request
// path p, in order; none for a path that is never served.
func fileCandidates(p string) []string {
	if strings.ContainsAny(p, "\x00\\") {
		return nil
	}
	clean := strings.TrimPrefix(path.Clean("/"+p), "/")
	for _, seg := range strings.Split(clean, "/") {
		if strings.HasPrefix(seg, ".") && seg != ".well-known" {
			return nil
		}
	}
	switch {
	case clean == "":
		return []string{"index.html"}
	case strings.HasSuffix(p, "/"):
		return []string{clean + "/index.html"}
	default:
		return []string{clean, clean + ".html", clean + "/index.html"}
	}
}

// load stats (and, when small, reads) one regular file.
func (s *staticSite) load(name string) *staticFile {
	if s.root == nil {
		return nil // restored from the state file, but the files are gone
	}
	fh, err := s.root.Open(name)
	if err != nil {
		return nil
	}
	kept := false
	defer func() {
		if !kept {
			fh.Close()
		}
	}()
	fi, err := fh.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	f := &staticFile{name: name, size: fi.Size(), modTime: fi.ModTime(), ctype: contentType(name), cache: cacheControl("/" + name)}
	h := sha256.New()
	var buf bytes.Buffer
	var w io.Writer = h
	small := fi.Size() <= staticSmallFile && s.held.Load()+fi.Size() <= staticMemBudget
	if small {
		w = io.MultiWriter(h, &buf)
	}
	if _, err := io.Copy(w, fh); err != nil {
		return nil
	}
	// A strong ETag from the contents: images have fixed mtimes, so size
	// and mtime would say two releases' different files are the same.
	f.etag = `"` + base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:12]) + `"`
	if small {
		f.data = buf.Bytes()
		s.held.Add(int64(len(f.data)))
	}
	kept = s.keep(f, fh)
	return f
}

// variants finds precompressed siblings, best first.
func (s *staticSite) variants(name string) []variant {
	var out []variant
	for _, v := range []struct{ enc, ext string }{{"br", ".br"}, {"gzip", ".gz"}} {
		if f := s.load(name + v.ext); f != nil {
			f.etag = strings.TrimSuffix(f.etag, `"`) + "-" + v.enc + `"`
			out = append(out, variant{v.enc, f})
		}
	}
	return out
}

// send writes f (or the precompressed variant the client accepts) with its
// caching headers; http.ServeContent answers conditional and range
// requests (304, 206, 412) from the ETag and Last-Modified.
func (s *staticSite) send(w http.ResponseWriter, req *http.Request, f *staticFile, status int) (int, int64) {
	body, enc := f, ""
	if ae := req.Header["Accept-Encoding"]; len(ae) > 0 {
		for _, v := range f.variants {
			if accepts(strings.Join(ae, ","), v.encoding) {
				body, enc = v.file, v.encoding
				break
			}
		}
	}
	if status == http.StatusOK && req.Method == http.MethodGet && !conditional(req) {
		if fw, ok := w.(*frontWriter); ok {
			if n, ok := fw.sendPrebuilt(body); ok {
				return http.StatusOK, n
			}
		}
	}
	h := w.Header()
	h["Content-Type"] = f.hType
	h["X-Content-Type-Options"] = hNosniff
	if len(f.variants) > 0 {
		h["Vary"] = hVary
	}
	if enc != "" {
		h["Content-Encoding"] = encodings[enc]
	}
	if status != http.StatusOK {
		// The site's own 404 page: no validators, no ranges.
		h.Set("Cache-Control", "no-cache")
		h["Content-Length"] = body.hLen
		w.WriteHeader(status)
		if req.Method == http.MethodHead {
			return status, 0
		}
		n, _ := s.copy(w, body)
		return status, n
	}
	h["Cache-Control"] = f.hCache
	h["Etag"] = body.hTag
	h["Last-Modified"] = body.hMod
	if body.data != nil && !conditional(req) {
		// The common case, without http.ServeContent: a file in memory and
		// a plain GET (or HEAD).
		h["Content-Length"] = body.hLen
		if req.Method == http.MethodHead {
			w.WriteHeader(http.StatusOK)
			return http.StatusOK, 0
		}
		return http.StatusOK, int64(writeCorked(w, req, http.StatusOK, body.data))
	}
	// Conditional and range requests (304, 206, 412), and files on disk
	// (sendfile through net/http), go through http.ServeContent.
	cw := &countingWriter{ResponseWriter: w}
	_, front := w.(*frontWriter)
	switch {
	case body.data != nil:
		http.ServeContent(cw, req, "", body.modTime, bytes.NewReader(body.data))
	case front && body.fd != nil:
		// The Front's own connection (net/http's sendfile is not for it):
		// the kept file, read at offsets, so no open per request.
		http.ServeContent(cw, req, "", body.modTime, io.NewSectionReader(body.fd.f, 0, body.size))
	default:
		fh, err := s.root.Open(body.name)
		if err != nil {
			http.Error(w, "file vanished", http.StatusInternalServerError)
			return http.StatusInternalServerError, 0
		}
		defer fh.Close()
		http.ServeContent(cw, req, "", body.modTime, fh)
	}
	if cw.status == 0 {
		cw.status = http.StatusOK
	}
	return cw.status, cw.n
}

var encodings = map[string][]string{"br": {"br"}, "gzip": {"gzip"}}

// conditional says whether req has validators or a range for ServeContent.
func conditional(req *http.Request) bool {
	for _, k := range []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "Range", "If-Range"} {
		if _, ok := req.Header[k]; ok {
			return true
		}
	}
	return false
}

func (s *staticSite) copy(w io.Writer, f *staticFile) (int64, error) {
	if f.data != nil {
		n, err := w.Write(f.data)
		return int64(n), err
	}
	fh, err := s.root.Open(f.name)
	if err != nil {
		return 0, err
	}
	defer fh.Close()
	return io.Copy(w, fh)
}

// accepts says whether an Accept-Encoding value allows enc (q=0 refuses).
func accepts(ae, enc string) bool {
	for _, part := range strings.Split(ae, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), enc) && strings.TrimSpace(name) != "*" {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return !(q == "q=0" || q == "q=0.0" || q == "q=0.00" || q == "q=0.000")
	}
	return false
}

// countingWriter records the status and body bytes of ServeContent.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (c *countingWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadFrom keeps sendfile for large files.
func (c *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := io.Copy(c.ResponseWriter, r)
	c.n += n
	return n, err
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// contentType names a file's media type from its extension, with a table
// of our own first so that answers do not depend on the host's mime.types.
func contentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := staticTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}

var staticTypes = map[string]string{
	".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8",
	".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
	".json": "application/json", ".map": "application/json", ".webmanifest": "application/manifest+json",
	".txt": "text/plain; charset=utf-8", ".xml": "application/xml", ".svg": "image/svg+xml",
	".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp",
	".avif": "image/avif", ".ico": "image/x-icon", ".woff": "font/woff", ".woff2": "font/woff2", ".ttf": "font/ttf",
	".otf": "font/otf", ".wasm": "application/wasm", ".pdf": "application/pdf", ".mp4": "video/mp4", ".webm": "video/webm",
}

// cacheControl is the Cache-Control of a path: a year and immutable for
// fingerprinted assets (their name changes when their contents do), revalidate
// every time for HTML, five minutes for other files.
func cacheControl(p string) string {
	switch {
	case Fingerprinted(p):
		return "public, max-age=31536000, immutable"
	case strings.HasSuffix(p, ".html") || strings.HasSuffix(p, ".htm") || strings.HasSuffix(p, "/"):
		return "public, max-age=0, must-revalidate"
	default:
		return "public, max-age=300"
	}
}

// fingerprintedDirs hold only content-addressed build output.
var fingerprintedDirs = []string{"/_next/static/", "/_nuxt/", "/_astro/", "/_app/immutable/"}

// Fingerprinted says whether a URL path names a content-addressed asset:
// under a framework's hashed-output directory, or with a content hash in
// its file name ("main.3f2a9c1b.js", "index-BPvgi06w.js").
func Fingerprinted(p string) bool {
	for _, d := range fingerprintedDirs {
		if strings.HasPrefix(p, d) && !strings.HasSuffix(p, ".html") {
			return true
		}
	}
	base := path.Base(p)
	dot := strings.LastIndexByte(base, '.')
	if dot <= 0 {
		return false
	}
	name := base[:dot]
	for name != "" {
		i := strings.IndexAny(name, ".-_~")
		if i < 0 {
			return isHashToken(name)
		}
		if isHashToken(name[:i]) {
			return true
		}
		name = name[i+1:]
	}
	return false
}

// isHashToken: 8+ lowercase hex characters with a digit (webpack, Next
// chunk hashes), or exactly 8 base64url characters mixing upper case,
// lower case and digits (Vite, Rollup).
func isHashToken(t string) bool {
	if len(t) < 8 {
		return false
	}
	hex, digit, upper, lower := true, false, false, false
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case '0' <= c && c <= '9':
			digit = true
		case 'a' <= c && c <= 'f':
			lower = true
		case 'g' <= c && c <= 'z':
			lower, hex = true, false
		case 'A' <= c && c <= 'Z':
			upper, hex = true, false
		default:
			return false
		}
	}
	if hex && digit {
		return true
	}
	return len(t) == 8 && digit && upper && lower
}

// prepareStatic opens and checks the static site of a pending deploy: the
// gate of an app that runs no process.
func (r *Router) prepareStatic(p *pending) error {
	if p.req.Static == nil {
		return nil
	}
	site, err := openStatic(*p.req.Static)
	if err != nil {
		return fmt.Errorf("deploying %q: %w", p.req.Service, err)
	}
	if err := site.check(); err != nil {
		site.close()
		return fmt.Errorf("deploying %q: %w", p.req.Service, err)
	}
	p.next.static = site
	return nil
}

// staticSpec is what the state file records of a set's site.
func (s *targetSet) staticSpec() *StaticSite {
	if s.static == nil {
		return nil
	}
	spec := s.static.spec
	return &spec
}
