package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// upstream is the RoundTripper of one target. Bodyless GET and HEAD
// requests, nearly all of a storefront's traffic, take a synchronous
// HTTP/1.1 path: the request's own goroutine writes the request and reads
// the response on a pooled connection. http.Transport runs two goroutines
// per connection and hands every request and response between them through
// channels; on a loaded two-core machine that handoff was most of the
// router's CPU cost per request. Everything else (request bodies, upgrades,
// other methods) goes to http.Transport, which handles 100-continue, body
// write errors racing the response, and protocol switches.
type upstream struct {
	addr          string
	dialer        *net.Dialer
	headerTimeout time.Duration
	idleTimeout   time.Duration
	maxIdle       int
	fallback      *http.Transport

	// Every connection to the target, both paths, so that a drain deadline
	// can close them all without a per-request context to cancel.
	connsMu sync.Mutex
	conns   map[*trackedConn]struct{}
	killed  atomic.Bool

	idleMu   sync.Mutex
	idle     []*upConn // LIFO: the most recently used connection is reused first
	sweeping bool
}

var _ http.RoundTripper = (*upstream)(nil)

func newUpstream(addr string, cfg config) *upstream {
	u := &upstream{
		addr:          addr,
		dialer:        &net.Dialer{Timeout: cfg.dialTimeout, KeepAlive: 30 * time.Second},
		headerTimeout: cfg.responseHeaderTimeout,
		// Node's http server closes idle keep-alive connections after 5 s; a
		// pooled connection reused just as the server closes it fails requests
		// that cannot be retried (POST). Let ours expire first.
		idleTimeout: 4 * time.Second,
		maxIdle:     cfg.maxIdlePerTarget,
		conns:       map[*trackedConn]struct{}{},
	}
	u.fallback = &http.Transport{
		Proxy:                 nil, // never route instance traffic through an environment proxy
		DialContext:           u.dial,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   cfg.maxIdlePerTarget,
		IdleConnTimeout:       u.idleTimeout,
		ResponseHeaderTimeout: cfg.responseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		// The client negotiates encoding with the app, not with us.
		DisableCompression: true,
		ReadBufferSize:     16 << 10,
		WriteBufferSize:    16 << 10,
	}
	return u
}

// errTargetClosed is returned for requests that would open a connection to
// a target after its drain deadline closed it.
var errTargetClosed = errors.New("target closed after its drain")

// dial opens a tracked connection; it refuses once the target was killed.
func (u *upstream) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := u.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, u: u}
	u.connsMu.Lock()
	defer u.connsMu.Unlock()
	if u.killed.Load() {
		c.Close()
		return nil, errTargetClosed
	}
	u.conns[tc] = struct{}{}
	return tc, nil
}

// kill closes every connection to the target, busy or idle, and refuses new
// ones. Requests using them fail at once; upgraded connections end.
func (u *upstream) kill() {
	u.connsMu.Lock()
	u.killed.Store(true)
	conns := make([]*trackedConn, 0, len(u.conns))
	for c := range u.conns {
		conns = append(conns, c)
	}
	u.connsMu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	u.closeIdle()
}

// closeIdle closes the pooled connections of both paths.
func (u *upstream) closeIdle() {
	u.idleMu.Lock()
	idle := u.idle
	u.idle = nil
	u.idleMu.Unlock()
	for _, pc := range idle {
		pc.Close()
	}
	u.fallback.CloseIdleConnections()
}

type trackedConn struct {
	net.Conn
	u    *upstream
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.u.connsMu.Lock()
		delete(c.u.conns, c)
		c.u.connsMu.Unlock()
	})
	return c.Conn.Close()
}

// upConn is a connection of the synchronous path.
type upConn struct {
	*trackedConn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
}

func (u *upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	if (req.Method != http.MethodGet && req.Method != http.MethodHead) ||
		(req.Body != nil && req.Body != http.NoBody) || req.Header.Get("Upgrade") != "" {
		return u.fallback.RoundTrip(req)
	}
	// A pooled connection the target closed while idle fails before any
	// byte of the answer arrives; GET and HEAD without a body are safe to
	// send again on a new connection, as http.Transport does.
	for attempt := 0; ; attempt++ {
		pc, reused, err := u.get(req.Context())
		if err != nil {
			return nil, err
		}
		res, retry, err := u.roundTrip(pc, req)
		if err == nil {
			return res, nil
		}
		pc.Close()
		if !(retry && reused && attempt == 0) || req.Context().Err() != nil {
			return nil, err
		}
	}
}

// roundTrip sends req on pc and reads the response head. retry says that
// the target sent nothing back, so the request may be sent again.
func (u *upstream) roundTrip(pc *upConn, req *http.Request) (res *http.Response, retry bool, err error) {
	ctx := req.Context()
	// Closing (not a deadline in the past, which the header timeout below
	// could overwrite) is what makes a blocked read return for sure.
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer func() {
		if err != nil {
			stop()
		}
	}()
	if err := writeHead(pc.bw, req); err != nil {
		return nil, false, err
	}
	if err := pc.bw.Flush(); err != nil {
		return nil, true, ctxErr(ctx, err)
	}
	if u.headerTimeout > 0 {
		pc.SetReadDeadline(time.Now().Add(u.headerTimeout))
	}
	if _, err := pc.br.Peek(1); err != nil {
		return nil, true, ctxErr(ctx, headerTimeoutErr(err, u.headerTimeout))
	}
	for informational := 0; ; informational++ {
		res, err = http.ReadResponse(pc.br, req)
		if err != nil {
			return nil, false, ctxErr(ctx, headerTimeoutErr(err, u.headerTimeout))
		}
		if res.StatusCode >= 200 {
			break
		}
		if res.StatusCode == http.StatusSwitchingProtocols || informational == 5 {
			return nil, false, fmt.Errorf("unexpected %d response to %s", res.StatusCode, req.Method)
		}
		// 103 Early Hints and the like go on to the client.
		if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(res.StatusCode, textproto.MIMEHeader(res.Header)); err != nil {
				return nil, false, err
			}
		}
	}
	if u.headerTimeout > 0 {
		pc.SetReadDeadline(time.Time{})
	}
	res.Body = &upBody{rc: res.Body, u: u, pc: pc, stop: stop, keep: !res.Close && !req.Close}
	return res, false, nil
}

// writeHead writes the head of a bodyless request. Request.Write does the
// same in general (bodies, trailers, sorted headers) at ten allocations a
// request; a proxy does not need the sorting.
func writeHead(bw *bufio.Writer, req *http.Request) error {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if strings.ContainsAny(host, "\r\n ") {
		return fmt.Errorf("invalid Host %q", host)
	}
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(req.URL.RequestURI())
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	for k, vs := range req.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue // framing is ours; Host is above
		}
		for _, v := range vs {
			if k == "User-Agent" && v == "" {
				continue // ReverseProxy's way of saying "send none"
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			writeHeaderValue(bw, v)
			bw.WriteString("\r\n")
		}
	}
	if req.Close {
		bw.WriteString("Connection: close\r\n")
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// writeHeaderValue writes v with any CR or LF turned into a space, as
// http.Header.Write does, so that no value can smuggle a header line.
func writeHeaderValue(bw *bufio.Writer, v string) {
	for {
		i := strings.IndexAny(v, "\r\n")
		if i < 0 {
			bw.WriteString(v)
			return
		}
		bw.WriteString(v[:i])
		bw.WriteByte(' ')
		v = v[i+1:]
	}
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

// headerTimeoutErr names the response header timeout when it is why a read failed.
func headerTimeoutErr(err error, d time.Duration) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &timeoutError{fmt.Sprintf("no response headers within %s", d)}
	}
	return err
}

type timeoutError struct{ msg string }

func (e *timeoutError) Error() string { return e.msg }
func (e *timeoutError) Timeout() bool { return true }
func (*timeoutError) Temporary() bool { return true }

// upBody returns its connection to the pool once the body was read to the
// end, and closes it if the body is abandoned midway.
type upBody struct {
	rc   io.ReadCloser
	u    *upstream
	pc   *upConn
	stop func() bool
	keep bool
	done bool
}

func (b *upBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err != nil {
		b.finish(err == io.EOF)
	}
	return n, err
}

func (b *upBody) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

func (b *upBody) finish(complete bool) {
	b.done = true
	// stop reports false if ctx ended and the connection was closed under
	// the read.
	if b.stop() && complete && b.keep {
		b.u.put(b.pc)
		return
	}
	b.pc.Close()
}

// get returns a pooled connection or dials a new one.
func (u *upstream) get(ctx context.Context) (*upConn, bool, error) {
	now := time.Now()
	u.idleMu.Lock()
	for n := len(u.idle); n > 0; n = len(u.idle) {
		pc := u.idle[n-1]
		u.idle = u.idle[:n-1]
		if now.Sub(pc.idleAt) < u.idleTimeout {
			u.idleMu.Unlock()
			return pc, true, nil
		}
		// The rest are older still.
		stale := u.idle
		u.idle = nil
		u.idleMu.Unlock()
		pc.Close()
		for _, s := range stale {
			s.Close()
		}
		u.idleMu.Lock()
	}
	u.idleMu.Unlock()
	c, err := u.dial(ctx, "tcp", u.addr)
	if err != nil {
		return nil, false, err
	}
	return &upConn{trackedConn: c.(*trackedConn), br: bufio.NewReaderSize(c, 16<<10), bw: bufio.NewWriterSize(c, 4<<10)}, false, nil
}

// put pools a connection whose last response was read to the end.
func (u *upstream) put(pc *upConn) {
	pc.idleAt = time.Now()
	u.idleMu.Lock()
	if len(u.idle) >= u.maxIdle {
		u.idleMu.Unlock()
		pc.Close()
		return
	}
	u.idle = append(u.idle, pc)
	if !u.sweeping {
		u.sweeping = true
		time.AfterFunc(u.idleTimeout, u.sweep)
	}
	u.idleMu.Unlock()
	// After kill the connection is already closed (kill closes every
	// tracked one); a later get finds that out and dial refuses.
}

// sweep closes connections idle longer than idleTimeout, so that a target
// with no traffic holds no sockets, and runs again while any remain.
func (u *upstream) sweep() {
	u.idleMu.Lock()
	cutoff := time.Now().Add(-u.idleTimeout)
	i := 0
	for i < len(u.idle) && !u.idle[i].idleAt.After(cutoff) {
		i++
	}
	stale := append([]*upConn(nil), u.idle[:i]...)
	u.idle = append(u.idle[:0], u.idle[i:]...)
	if len(u.idle) > 0 {
		time.AfterFunc(u.idleTimeout, u.sweep)
	} else {
		u.sweeping = false
	}
	u.idleMu.Unlock()
	for _, pc := range stale {
		pc.Close()
	}
}
