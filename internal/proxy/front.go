package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Front serves the plain-HTTP visitor connections of a Router without
// net/http's server for the requests that are nearly all of a store's
// traffic. Profiling the router under load showed net/http's server side
// costing about as much CPU per request as the proxying: a background-read
// goroutine and two read deadlines per request (so that a handler sees the
// client leave), a response object, a chunk writer and header sorting.
// Go's net/http server alone needed ~30 µs per request on the benchmark
// machine, a loop that reads the head and writes the answer ~16 µs.
//
// Front is a listener wrapper: each accepted connection is read by its own
// loop, which parses request heads itself. A bodyless GET/HEAD/OPTIONS/DELETE
// over HTTP/1.1 with a plain head, for a host whose service is proxied (no
// static site, no edge cache answer, not stopped), goes straight to
// Router.ServeHTTP with a light ResponseWriter. At the first request that is
// anything else (a body, an upgrade, HTTP/1.0, an odd or big head, an unknown
// host, a TLS redirect), the loop hands the connection, that request's bytes
// still unread, to the http.Server serving the listener Front returns, which
// then owns it for good. Every router rule (forwarding headers, retry,
// access log, metrics, error pages) is the router's own code either way;
// the limits (LimitListener, IdleTimeout, ReadHeaderTimeout) apply to both.
type Front struct {
	r      *Router
	direct func(host, path string) bool
	idle   time.Duration
	header time.Duration

	mu      sync.Mutex
	conns   map[*frontConn]struct{}
	closing bool
	stop    chan struct{}
	// shutting is closing for the request loop, which must not take mu
	// for every request.
	shutting atomic.Bool

	served    atomic.Uint64 // requests answered by the loop itself
	handedOff atomic.Uint64 // connections given to the http.Server
}

// NewFront returns a Front for r with l's timeouts. direct, when not nil,
// says whether the handler the http.Server runs would pass a request for
// host and path straight to r (the TLS edge's redirect wraps the router on
// the plain listener); a request it does not pass goes to the http.Server.
func NewFront(r *Router, l Limits, direct func(host, path string) bool) *Front {
	l = l.WithDefaults()
	return &Front{r: r, direct: direct, idle: positive(l.IdleTimeout), header: positive(l.ReadHeaderTimeout),
		conns: map[*frontConn]struct{}{}, stop: make(chan struct{})}
}

// Listener wraps ln (a LimitListener, usually): its Accept returns only the
// connections the front hands off, for the http.Server given to Serve.
func (f *Front) Listener(ln net.Listener) net.Listener {
	fl := &frontListener{Listener: ln, f: f, conns: make(chan net.Conn), errc: make(chan error, 1), done: make(chan struct{})}
	go fl.acceptLoop()
	go f.watchClients(reapInterval)
	return fl
}

// Wait closes the front's idle connections and waits, up to ctx, for those
// in a request to finish it; call it after the http.Server's Shutdown.
func (f *Front) Wait(ctx context.Context) error {
	f.shut()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		f.closeIdle()
		f.mu.Lock()
		n := len(f.conns)
		f.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			f.closeAll()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (f *Front) shut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closing {
		f.closing = true
		f.shutting.Store(true)
		close(f.stop)
	}
}

func (f *Front) closeIdle() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for fc := range f.conns {
		// A new connection may have its first request on the way (quiesce
		// in server/handoff.go waits for those): like net/http, leave it
		// a few seconds before taking it for idle.
		if fc.state.CompareAndSwap(connIdle, connClosed) ||
			time.Since(fc.accepted) > newConnGrace && fc.state.CompareAndSwap(connNew, connClosed) {
			fc.c.Close()
		}
	}
}

func (f *Front) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for fc := range f.conns {
		fc.state.Store(connClosed)
		fc.c.Close()
	}
}

// watchClients notices clients that hung up in the middle of a request
// (a long poll, a slow page), as net/http's background read does: it
// cancels the connection's context, and the router's reaper then closes
// the target connection. One peek per busy connection a few times a
// second replaces a goroutine and two deadlines per request.
func (f *Front) watchClients(every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	var busy []*frontConn
	for {
		select {
		case <-f.stop:
			return
		case <-tick.C:
		}
		busy = busy[:0]
		f.mu.Lock()
		for fc := range f.conns {
			if fc.state.Load() == connActive {
				busy = append(busy, fc)
			}
		}
		f.mu.Unlock()
		for _, fc := range busy {
			if fc.state.Load() == connActive && clientGone(fc.raw) {
				fc.cancel()
			}
		}
	}
}

// clientGone peeks at the socket without blocking: end of file or an error
// other than "nothing to read" means the client closed or reset it. Data
// (a pipelined request) or nothing at all means it is still there.
func clientGone(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	var b [1]byte
	rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		gone = n == 0 && err == nil || err != nil && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR)
		return true
	})
	return gone
}

// frontListener feeds the http.Server the connections the front hands off.
type frontListener struct {
	net.Listener
	f     *Front
	conns chan net.Conn
	errc  chan error
	done  chan struct{}
	once  sync.Once
}

func (l *frontListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if te, ok := err.(interface{ Temporary() bool }); ok && te.Temporary() {
				time.Sleep(5 * time.Millisecond) // like net/http on EMFILE and the like
				continue
			}
			select {
			case l.errc <- err:
			case <-l.done:
			}
			return
		}
		go l.f.serveConn(l, c)
	}
}

// Accept returns the next handed-off connection.
func (l *frontListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errc:
		l.errc <- err // every later Accept fails alike
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and closes the front's idle connections; those in
// a request finish it, then close (see Front.Wait).
func (l *frontListener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() { close(l.done) })
	l.f.shut()
	l.f.closeIdle()
	return err
}

// handOff gives c to the http.Server; false if it is no longer accepting.
func (l *frontListener) handOff(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

const (
	connNew int32 = iota // no request yet
	connIdle
	connActive
	connClosed
)

// newConnGrace is how long a connection without a first request is not
// closed as idle by a shutdown (net/http's figure).
const newConnGrace = 5 * time.Second

type frontConn struct {
	c        net.Conn // as accepted (the limiter's connection)
	raw      net.Conn // the socket under it, for clientGone
	br       *bufio.Reader
	bw       *bufio.Writer
	state    atomic.Int32
	cancel   context.CancelFunc
	tmpl     *http.Request // carries the connection's context into each request
	remote   string
	accepted time.Time
}

// frontBuffer sizes a connection's read and write buffers. A request head
// that does not fit goes to net/http, which allows up to MaxHeaderBytes.
const frontBuffer = 4 << 10

func (f *Front) serveConn(l *frontListener, c net.Conn) {
	ctx, cancel := context.WithCancel(context.Background())
	fc := &frontConn{c: c, raw: c, br: bufio.NewReaderSize(c, frontBuffer), cancel: cancel, remote: c.RemoteAddr().String(), accepted: time.Now()}
	if lc, ok := c.(*limitedConn); ok {
		fc.raw = lc.Conn
	}
	fc.tmpl = (&http.Request{}).WithContext(ctx)
	f.mu.Lock()
	if f.closing {
		f.mu.Unlock()
		cancel()
		c.Close()
		return
	}
	f.conns[fc] = struct{}{}
	f.mu.Unlock()
	handed := false
	defer func() {
		f.mu.Lock()
		delete(f.conns, fc)
		f.mu.Unlock()
		cancel()
		if !handed {
			c.Close()
		}
	}()
	for first := true; ; first = false {
		// The first head is due within ReadHeaderTimeout of the accept,
		// as in net/http; later ones may wait IdleTimeout to start.
		wait := f.idle
		if first {
			wait = f.header
		}
		switch {
		case wait > 0:
			c.SetReadDeadline(time.Now().Add(wait))
		case !first:
			c.SetReadDeadline(time.Time{}) // that limit is off
		}
		if _, err := fc.br.Peek(1); err != nil {
			return
		}
		prev := connIdle
		if first {
			prev = connNew
		}
		if !fc.state.CompareAndSwap(prev, connActive) {
			return // Wait closed it
		}
		req, verdict := f.parse(fc, first)
		if verdict == dropIt {
			return
		}
		if verdict == handIt {
			c.SetReadDeadline(time.Time{})
			fc.state.Store(connClosed)
			handed = l.handOff(&prefixConn{Conn: c, br: fc.br})
			if handed {
				f.handedOff.Add(1)
			}
			return
		}
		f.served.Add(1)
		keep := f.serveOne(fc, req)
		if !keep || !fc.state.CompareAndSwap(connActive, connIdle) || f.shutting.Load() {
			return
		}
	}
}

// What parse found: a request the loop serves, one for net/http (left
// unread), or a connection to close (the head never came whole).
const (
	takeIt = iota
	handIt
	dropIt
)

// parse reads one request head when it is one the loop serves.
func (f *Front) parse(fc *frontConn, first bool) (*http.Request, int) {
	buf, _ := fc.br.Peek(fc.br.Buffered())
	end := headEnd(buf)
	if end == 0 {
		// Not all here yet: wait for it, within the header timeout.
		if !first {
			if f.header > 0 {
				fc.c.SetReadDeadline(time.Now().Add(f.header))
			} else {
				fc.c.SetReadDeadline(time.Time{})
			}
		}
		for end == 0 && fc.br.Buffered() < frontBuffer {
			if _, err := fc.br.Peek(fc.br.Buffered() + 1); err != nil {
				// Timed out or closed mid-head: net/http closes such a
				// connection without an answer too (and must not get
				// a second ReadHeaderTimeout for it).
				return nil, dropIt
			}
			buf, _ = fc.br.Peek(fc.br.Buffered())
			end = headEnd(buf)
		}
		if end == 0 {
			return nil, handIt // bigger than the buffer: net/http applies MaxHeaderBytes
		}
	}
	h, ok := parseRequestHead(buf[:end])
	if !ok || f.direct != nil && !f.direct(h.host, h.path) {
		return nil, handIt
	}
	req := new(http.Request)
	*req = *fc.tmpl
	req.Method, req.RequestURI, req.Host, req.Header = h.method, h.uri, h.host, h.header
	req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/1.1", 1, 1
	req.URL = h.url
	req.RemoteAddr = fc.remote
	req.Body = http.NoBody
	req.Close = h.close
	if !f.takes(req) {
		return nil, handIt
	}
	fc.br.Discard(end)
	return req, takeIt
}

// takes says whether the router would proxy req on the synchronous path;
// anything else is served by net/http with the router's usual handler.
func (f *Front) takes(req *http.Request) bool {
	if !fastEligible(req) {
		return false
	}
	svc := f.r.table.Load().lookup(requestHost(req.Host))
	if svc == nil {
		return false
	}
	set := svc.active.Load()
	if set.static != nil || set.maintenance == "" && f.r.cache != nil && cacheableRequest(req) {
		return frontTakesFiles(f.r, set, req) // front_files.go
	}
	return set.maintenance == "" && len(set.targets) > 0
}

// serveOne answers one request; false means the connection must close.
func (f *Front) serveOne(fc *frontConn, req *http.Request) (keep bool) {
	// The write buffer is lent for the request only: an idle keep-alive
	// connection holds none.
	fc.bw = frontWriters.Get().(*bufio.Writer)
	fc.bw.Reset(fc.c)
	w := &frontWriter{fc: fc, req: req, shutting: &f.shutting}
	defer func() {
		fc.bw.Reset(nil)
		frontWriters.Put(fc.bw)
		fc.bw = nil
	}()
	defer func() {
		if p := recover(); p != nil {
			// http.ErrAbortHandler (a target cut a body short) or a bug:
			// the answer is incomplete, so the connection must end.
			if p != http.ErrAbortHandler {
				f.r.cfg.log.Error("front: panic serving a request", "panic", p, "host", req.Host, "path", req.URL.Path)
			}
			// What was written goes out (its framing shows it is cut), as
			// net/http's final flush does.
			fc.bw.Flush()
			keep = false
		}
	}()
	f.r.ServeHTTP(w, req)
	return w.finish() && !req.Close && !w.close
}

var frontWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, frontBuffer) }}

// reqHead is a parsed request head.
type reqHead struct {
	method, uri, host, path string
	url                     *url.URL
	header                  http.Header
	close                   bool
}

// parseRequestHead parses a request head strictly: only an HTTP/1.1 head
// with CRLF line ends, one Host, origin-form target and no framing headers
// is accepted; anything unusual is left to net/http, which has the
// complete rules (and the right error answers). Keys are canonicalised;
// values are substrings of one string holding the head.
func parseRequestHead(b []byte) (reqHead, bool) {
	var h reqHead
	s := string(b)
	line, rest, ok := cutCRLF(s)
	if !ok {
		return h, false
	}
	method, line, ok1 := strings.Cut(line, " ")
	uri, proto, ok2 := strings.Cut(line, " ")
	if !ok1 || !ok2 || proto != "HTTP/1.1" || !validMethod(method) || uri == "" || uri[0] != '/' || !validURI(uri) {
		return h, false
	}
	u, err := parseURI(uri)
	if err != nil {
		return h, false
	}
	h.method, h.uri, h.url, h.path = method, uri, u, u.Path
	n := strings.Count(rest, "\n")
	h.header = make(http.Header, n)
	vals := make([]string, 0, n)
	hosts := 0
	for {
		line, rest, ok = cutCRLF(rest)
		if !ok {
			return h, false
		}
		if line == "" {
			break
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" || !validHeaderKey(k) {
			return h, false
		}
		v = strings.Trim(v, " \t")
		if !validHeaderValue(v) {
			return h, false
		}
		k = canonicalKey(k)
		switch k {
		case "Host":
			hosts++
			h.host = v
			continue
		case "Content-Length", "Transfer-Encoding", "Expect", "Upgrade":
			return h, false
		case "Connection":
			if listedIn("close", []string{v}) {
				h.close = true
			}
		}
		vals = append(vals, v)
		if prev, ok := h.header[k]; ok {
			h.header[k] = append(prev, v)
		} else {
			h.header[k] = vals[len(vals)-1 : len(vals) : len(vals)]
		}
	}
	if hosts != 1 || !validHost(h.host) {
		return h, false
	}
	return h, true
}

// parseURI is url.ParseRequestURI, without its parser for the plain paths
// nearly every asset request has: only letters, digits and "/._-~" (no
// escapes, no query), where the URL is the path alone.
func parseURI(uri string) (*url.URL, error) {
	for i := 0; i < len(uri); i++ {
		c := uri[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '/' || c == '.' || c == '_' || c == '-' || c == '~') {
			return url.ParseRequestURI(uri)
		}
	}
	return &url.URL{Path: uri}, nil
}

// cutCRLF cuts s at the first CRLF; a bare LF is not accepted here.
func cutCRLF(s string) (line, rest string, ok bool) {
	i := strings.IndexByte(s, '\n')
	if i < 1 || s[i-1] != '\r' {
		return "", "", false
	}
	line = s[:i-1]
	if strings.IndexByte(line, '\r') >= 0 {
		return "", "", false
	}
	return line, s[i+1:], true
}

func validMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodDelete:
		return true
	}
	return false
}

// validURI accepts printable ASCII without spaces, as a request target is.
func validURI(u string) bool {
	for i := 0; i < len(u); i++ {
		if c := u[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// validHeaderValue refuses control characters other than tab.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// validHost accepts a host name or address with an optional port.
func validHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(".-_:[]", c) >= 0) {
			return false
		}
	}
	return true
}

// prefixConn is a handed-off connection: the bytes the front read ahead
// (the request it did not take) come first.
type prefixConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if c.br != nil {
		if c.br.Buffered() > 0 {
			return c.br.Read(p)
		}
		c.br = nil
	}
	return c.Conn.Read(p)
}

// ReadFrom keeps sendfile for net/http's file answers (the limiter's
// connection implements it).
func (c *prefixConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.Conn}, r)
}

// CloseWrite lets net/http half-close after an error answer, as it does
// on a plain TCP connection.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// frontWriter is the ResponseWriter of the front's own requests. The head
// is written when the body starts (or at the end), with the framing the
// headers ask for: their Content-Length, else chunked.
type frontWriter struct {
	fc      *frontConn
	req     *http.Request
	h       http.Header
	status  int
	wrote   bool // the head is in the buffer
	chunked bool
	close   bool
	noBody  bool
	// left is what the body still owes its Content-Length (-1: none).
	left int64
	err  error
	// shutting is the front's: past it, answers close their connection.
	shutting *atomic.Bool
}

var _ http.Flusher = (*frontWriter)(nil)

// Header makes the map when a handler first asks: a static answer with a
// prebuilt head (static_sendfile.go) needs none.
func (w *frontWriter) Header() http.Header {
	if w.h == nil {
		w.h = make(http.Header, 8)
	}
	return w.h
}

func (w *frontWriter) WriteHeader(code int) {
	if w.status != 0 || w.wrote {
		return
	}
	if code == 499 {
		// Not a real status (router.go): the client is gone, answer nothing.
		w.status, w.close = code, true
		return
	}
	if code < 200 {
		// 103 Early Hints and the like: sent at once, the headers with it.
		w.writeHead(code, true)
		w.Flush()
		return
	}
	w.status = code
}

func (w *frontWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if !w.wrote {
		w.start(false)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.noBody || len(p) == 0 {
		return len(p), nil
	}
	var err error
	if w.chunked {
		w.fc.bw.WriteString(strconvHex(len(p)))
		w.fc.bw.WriteString("\r\n")
		_, err = w.fc.bw.Write(p)
		if err == nil {
			_, err = w.fc.bw.WriteString("\r\n")
		}
	} else {
		if w.left >= 0 && int64(len(p)) > w.left {
			// As net/http: bytes past the length would be read as the
			// start of the next answer.
			w.close = true
			return 0, http.ErrContentLength
		}
		_, err = w.fc.bw.Write(p)
		w.left -= int64(len(p))
	}
	if err != nil {
		w.err = err
		return 0, err
	}
	return len(p), nil
}

// Flush sends what is buffered (streams: ReverseProxy-style flushes after
// each chunk of a stream).
func (w *frontWriter) Flush() {
	if w.status != 0 && !w.wrote {
		w.start(false)
	}
	if w.err == nil {
		w.err = w.fc.bw.Flush()
	}
}

// start writes the final head. atEnd means the handler is done, so a
// response without a length has an empty body.
func (w *frontWriter) start(atEnd bool) {
	w.noBody = w.req.Method == http.MethodHead || w.status == http.StatusNoContent || w.status == http.StatusNotModified
	w.left = -1
	if cl, ok := w.h["Content-Length"]; ok && !w.noBody && len(cl) == 1 {
		if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil && n >= 0 {
			w.left = n
		}
	}
	if _, ok := w.h["Content-Length"]; !ok && !w.noBody {
		if atEnd {
			w.Header()["Content-Length"] = []string{"0"}
		} else {
			w.chunked = true
		}
	}
	w.writeHead(w.status, false)
}

func (w *frontWriter) writeHead(code int, informational bool) {
	bw := w.fc.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(statusLine(code))
	bw.WriteString("\r\n")
	for k, vs := range w.h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		if !informational && k == "Connection" {
			for _, v := range vs {
				if listedIn("close", []string{v}) {
					w.close = true
				}
			}
		}
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			writeValue(bw, v)
			bw.WriteString("\r\n")
		}
	}
	if informational {
		bw.WriteString("\r\n")
		return
	}
	if _, ok := w.h["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.Write(httpDate())
		bw.WriteString("\r\n")
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if (w.req.Close || w.shutting.Load()) && !w.close {
		// Shutting down: like net/http, tell the client not to send
		// another request on this connection, which is closed next.
		bw.WriteString("Connection: close\r\n")
		w.close = true
	}
	bw.WriteString("\r\n")
	w.wrote = true
}

// finish ends the answer; false means the connection cannot be reused.
func (w *frontWriter) finish() bool {
	if w.status == 499 && !w.wrote {
		return false
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if !w.wrote {
		w.start(true)
	}
	if w.chunked && w.err == nil {
		bw := w.fc.bw
		bw.WriteString("0\r\n")
		for k, vs := range w.h {
			if tk, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				for _, v := range vs {
					bw.WriteString(tk)
					bw.WriteString(": ")
					writeValue(bw, v)
					bw.WriteString("\r\n")
				}
			}
		}
		bw.WriteString("\r\n")
	}
	if w.err == nil {
		w.err = w.fc.bw.Flush()
	}
	// An answer short of its length leaves the client waiting for the
	// rest: only closing the connection ends it (net/http does too).
	return w.err == nil && w.status != 499 && w.left <= 0
}

// writeValue writes a header value with CR and LF turned into spaces.
func writeValue(bw *bufio.Writer, v string) {
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
	}
	bw.WriteString(v)
}

func strconvHex(n int) string {
	const digits = "0123456789abcdef"
	if n == 0 {
		return "0"
	}
	var b [16]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = digits[n&15]
		n >>= 4
	}
	return string(b[i:])
}

// statusLine is "200 OK" for 200.
func statusLine(code int) string {
	if s, ok := statusLines[code]; ok {
		return s
	}
	text := http.StatusText(code)
	if text == "" {
		text = "status code"
	}
	return itoa3(code) + " " + text
}

var statusLines = func() map[int]string {
	m := map[int]string{}
	for c := 100; c < 600; c++ {
		if t := http.StatusText(c); t != "" {
			m[c] = itoa3(c) + " " + t
		}
	}
	return m
}()

func itoa3(c int) string {
	if c < 100 || c > 999 {
		c = 500
	}
	return string([]byte{byte('0' + c/100), byte('0' + c/10%10), byte('0' + c%10)})
}

// httpDate is the Date header value, formatted once a second.
func httpDate() []byte {
	now := time.Now().Unix()
	if d := dateCache.Load(); d != nil && d.unix == now {
		return d.b
	}
	d := &cachedDate{unix: now, b: time.Unix(now, 0).UTC().AppendFormat(nil, http.TimeFormat)}
	dateCache.Store(d)
	return d.b
}

type cachedDate struct {
	unix int64
	b    []byte
}

var dateCache atomic.Pointer[cachedDate]
