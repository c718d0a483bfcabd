package proxy

import (
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Hardening defaults for the visitor-facing listeners (see Limits).
const (
	// DefaultIdleTimeout closes keep-alive connections idle this long (nginx: 75s).
	DefaultIdleTimeout = 75 * time.Second
	// DefaultReadHeaderTimeout bounds sending the request headers (slowloris).
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultWriteStallTimeout cuts a connection whose client stopped reading:
	// one write may block this long. A stream that keeps moving lasts forever.
	DefaultWriteStallTimeout = 60 * time.Second
	// DefaultMaxHeaderBytes is the largest request head accepted; past it, 431.
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultMaxConnsPerIP is how many connections one client IP may hold open.
	DefaultMaxConnsPerIP = 1024
)

// Limits bound what clients may hold on a visitor-facing listener. Zero
// fields take the defaults above; a negative count or duration turns that
// limit off.
type Limits struct {
	IdleTimeout       time.Duration
	ReadHeaderTimeout time.Duration
	WriteStallTimeout time.Duration
	MaxHeaderBytes    int
	MaxConnsPerIP     int
	// MaxConns caps all connections together; default: 90% of the process's
	// open-file limit, so the router refuses visitors before it cannot open
	// a state file, a socket to a target or an ACME request any more.
	MaxConns int
}

// WithDefaults fills zero fields with the defaults.
func (l Limits) WithDefaults() Limits {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&l.IdleTimeout, DefaultIdleTimeout)
	def(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&l.WriteStallTimeout, DefaultWriteStallTimeout)
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxConnsPerIP == 0 {
		l.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if l.MaxConns == 0 {
		l.MaxConns = fdBudget()
	}
	return l
}

// fdBudget is 90% of the soft open-file limit (Go raises it to the hard
// limit at start), or 0 (no cap) when it cannot be read.
func fdBudget() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 || rl.Cur > 1<<24 {
		return -1
	}
	return int(rl.Cur) * 9 / 10
}

// NewHardenedServer returns an http.Server for visitors with l's timeouts
// and header limit. It sets no read or write timeout on whole requests:
// uploads, long polls, server-sent events and websockets may last minutes;
// LimitListener's write-stall deadline cuts only clients that stop reading.
// HTTP/2 is negotiated over TLS (ServeTLS, or a TLSConfig offering "h2").
func NewHardenedServer(h http.Handler, l Limits) *http.Server {
	l = l.WithDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: positive(l.ReadHeaderTimeout),
		IdleTimeout:       positive(l.IdleTimeout),
		MaxHeaderBytes:    max(l.MaxHeaderBytes, 0),
		ConnContext:       withConn,
		// TLS handshake noise and clients hanging up are not worth a log line each.
		ErrorLog: log.New(discard{}, "", 0),
	}
}

func positive(d time.Duration) time.Duration { return max(d, 0) }

// ConnLimiter is a listener that admits at most Limits.MaxConnsPerIP
// connections per client IP and Limits.MaxConns in all. A connection past a
// limit is reset right after accept, before any TLS or HTTP work, so a
// client opening thousands of idle sockets costs one file descriptor for a
// moment each instead of exhausting them.
type ConnLimiter struct {
	net.Listener
	perIP, total int
	stall        time.Duration

	mu    sync.Mutex
	open  map[string]int
	count int

	refused atomic.Uint64
}

// LimitListener wraps ln with l's connection limits and write-stall deadline.
func LimitListener(ln net.Listener, l Limits) *ConnLimiter {
	l = l.WithDefaults()
	return &ConnLimiter{Listener: ln, perIP: l.MaxConnsPerIP, total: l.MaxConns, stall: positive(l.WriteStallTimeout), open: map[string]int{}}
}

// Refused counts connections closed because a limit was reached.
func (l *ConnLimiter) Refused() uint64 { return l.refused.Load() }

// Open returns how many connections are open in all.
func (l *ConnLimiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count
}

// Accept returns the next connection within the limits.
func (l *ConnLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		if l.admit(ip) {
			return &limitedConn{Conn: c, l: l, ip: ip}, nil
		}
		l.refused.Add(1)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // a reset: the client learns at once, and no TIME_WAIT stays behind
		}
		c.Close()
	}
}

func (l *ConnLimiter) admit(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total > 0 && l.count >= l.total {
		return false
	}
	if l.perIP > 0 && l.open[ip] >= l.perIP {
		return false
	}
	l.open[ip]++
	l.count++
	return true
}

func (l *ConnLimiter) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count--
	if n := l.open[ip] - 1; n > 0 {
		l.open[ip] = n
	} else {
		delete(l.open, ip)
	}
}

func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}

// limitedConn gives back its slot once, and moves the write deadline forward
// before writes so that only a write blocked for the whole stall timeout fails.
type limitedConn struct {
	net.Conn
	l    *ConnLimiter
	ip   string
	once sync.Once
	// lastDeadline is when the write deadline was last moved (unix nanos);
	// it moves at most every quarter of the timeout, not on every write.
	lastDeadline atomic.Int64
	cork         cork          // see cork.go
	sf           sendfileState // see sendfile_linux.go
}

func (c *limitedConn) Write(p []byte) (int, error) {
	if c.cork.on {
		return c.heldWrite(p)
	}
	c.moveDeadline()
	return c.Conn.Write(p)
}

func (c *limitedConn) moveDeadline() {
	if s := c.l.stall; s > 0 {
		now := time.Now()
		if now.UnixNano()-c.lastDeadline.Load() > int64(s/4) {
			c.lastDeadline.Store(now.UnixNano())
			c.Conn.SetWriteDeadline(now.Add(s))
		}
	}
}

// ReadFrom keeps sendfile/splice for plain-HTTP file answers (static
// sites): net/http uses it when the connection offers it. It copies in
// 1 MiB slices (sendfile still applies to a LimitedReader of a file) and
// moves the stall deadline before each, so a slow but moving client
// gets a big file and a stalled one is still cut.
func (c *limitedConn) ReadFrom(r io.Reader) (int64, error) {
	rf, ok := c.Conn.(io.ReaderFrom)
	if !ok {
		return io.Copy(writerOnly{c}, r)
	}
	const slice = 1 << 20
	var total int64
	for {
		if s := c.l.stall; s > 0 {
			now := time.Now()
			c.lastDeadline.Store(now.UnixNano())
			c.Conn.SetWriteDeadline(now.Add(s))
		}
		n, err := rf.ReadFrom(io.LimitReader(r, slice))
		total += n
		if err != nil || n < slice {
			return total, err
		}
	}
}

// writerOnly hides ReadFrom so io.Copy does not call it back.
type writerOnly struct{ io.Writer }

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.ip) })
	return err
}
