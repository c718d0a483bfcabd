package proxy

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
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
	// retired is set once the target left the router (drained or
	// abandoned); the reaper forgets it when its last connection closed.
	retired atomic.Bool

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
		ReadBufferSize:     upReadBuffer,
		WriteBufferSize:    upReadBuffer,
	}
	return u
}

// upReadBuffer sizes each upstream connection's read buffer: a typical
// response head and a small body fit, like nginx's proxy_buffer_size of one
// page. Longer bodies are copied through pooled buffers (fast.go).
const upReadBuffer = 4 << 10

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
	// req is the request the synchronous path is relaying on the
	// connection, for the reaper (reap) to notice the client leaving.
	req atomic.Pointer[http.Request]
}

// reap closes the connections whose request's client has left, so that a
// long poll or stream ends at the target too. One sweep a few times a
// second replaces a context.AfterFunc per request (four allocations).
// Whoever takes the request off the connection first (the reaper, or the
// request finishing) decides whether it is closed.
func (u *upstream) reap() {
	u.connsMu.Lock()
	var gone []*trackedConn
	for c := range u.conns {
		if r := c.req.Load(); r != nil && r.Context().Err() != nil && c.req.CompareAndSwap(r, nil) {
			gone = append(gone, c)
		}
	}
	u.connsMu.Unlock()
	for _, c := range gone {
		c.Close()
	}
}

// open says how many connections to the target are open.
func (u *upstream) open() int {
	u.connsMu.Lock()
	defer u.connsMu.Unlock()
	return len(u.conns)
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.u.connsMu.Lock()
		delete(c.u.conns, c)
		c.u.connsMu.Unlock()
	})
	return c.Conn.Close()
}

// upConn is a connection of the synchronous path. It has a read buffer
// only: request heads are built in a pooled buffer and written in one call.
type upConn struct {
	*trackedConn
	br     *bufio.Reader
	idleAt time.Time
	head   respHead // the last response head, reused: it is big
}

// RoundTrip is ReverseProxy's transport for what the synchronous path does
// not take (request bodies, upgrades, other methods).
func (u *upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	return u.fallback.RoundTrip(req)
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
	pc := &upConn{trackedConn: c.(*trackedConn), br: bufio.NewReaderSize(c, upReadBuffer)}
	return pc, false, nil
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
