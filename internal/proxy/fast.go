package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The synchronous path proxies bodyless idempotent requests (GET, HEAD,
// OPTIONS, DELETE without a body: nearly all of a storefront's traffic)
// without httputil.ReverseProxy or http.Transport. The request's own
// goroutine writes the request head on a pooled connection, parses the
// response head straight into the client's header map (one string for the
// whole head, values sliced from it) and copies the body out of the
// connection's read buffer. ReverseProxy clones the request, its header
// and URL, and http.Transport hands the request between two goroutines per
// connection; together that was about 40 allocations and most of the
// router's CPU per request. Everything else goes to ReverseProxy.

// fastEligible says whether req takes the synchronous path.
func fastEligible(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodDelete:
	default:
		return false
	}
	if req.Body != nil && req.Body != http.NoBody || req.ContentLength > 0 {
		return false
	}
	if _, ok := req.Header["Upgrade"]; ok {
		return false
	}
	_, te := req.Header["Transfer-Encoding"]
	return !te
}

// errNothingBack marks a failure before any byte of a response arrived:
// the request may be sent again (it is idempotent and bodyless).
var errNothingBack = errors.New("connection closed before a response")

// dialError is a failure to connect to the target: nothing was sent, so
// the router may try another target.
type dialError struct{ err error }

func (e *dialError) Error() string { return "connecting to the target: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// retryable says that err left the request unsent or unanswered, so that it
// may go to another target.
func retryable(err error) bool {
	var de *dialError
	return errors.As(err, &de) || errors.Is(err, errNothingBack)
}

// serveFast proxies req on the synchronous path. It returns the status and
// body bytes sent to the client. An error means nothing was written to w
// (the caller answers, or tries another target); failures after the head
// was written end the client connection (http.ErrAbortHandler), as
// ReverseProxy does, so that a cut body is never taken for a whole one.
func (u *upstream) serveFast(w http.ResponseWriter, req *http.Request, fwd *forwarding) (int, int64, error) {
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		pc, reused, err := u.get(ctx)
		if err != nil {
			if errors.Is(err, errTargetClosed) {
				return 0, 0, err
			}
			return 0, 0, &dialError{err}
		}
		status, n, err := u.exchange(pc, w, req, fwd)
		if err == nil {
			return status, n, nil
		}
		// A pooled connection the target closed while idle fails before
		// any byte of the answer arrives: send again on a fresh one, as
		// http.Transport does.
		if !errors.Is(err, errNothingBack) || !reused || attempt > 0 || ctx.Err() != nil {
			return 0, 0, err
		}
	}
}

// exchange sends req on pc and relays the answer to w.
func (u *upstream) exchange(pc *upConn, w http.ResponseWriter, req *http.Request, fwd *forwarding) (status int, n int64, err error) {
	ctx := req.Context()
	// Closing the connection (not a deadline in the past, which the header
	// timeout could overwrite) is what surely ends a blocked read when the
	// client leaves: the router's reaper does that (upstream.reap).
	pc.req.Store(req)
	if err := u.writeHead(pc, req, fwd); err != nil {
		pc.Close()
		return 0, 0, ctxErr(ctx, fmt.Errorf("%w: %w", errNothingBack, err))
	}
	if u.headerTimeout > 0 {
		pc.SetReadDeadline(time.Now().Add(u.headerTimeout))
	}
	h := w.Header()
	head := &pc.head
	for informational := 0; ; informational++ {
		if _, err := pc.br.Peek(1); err != nil {
			pc.Close()
			if err = headerTimeoutErr(err, u.headerTimeout); isTimeout(err) {
				return 0, 0, ctxErr(ctx, err) // the target has the request and is slow: not sent again
			}
			return 0, 0, ctxErr(ctx, fmt.Errorf("%w: %w", errNothingBack, err))
		}
		if err := readHead(pc.br, head); err != nil {
			pc.Close()
			return 0, 0, ctxErr(ctx, headerTimeoutErr(err, u.headerTimeout))
		}
		if head.status >= 200 {
			break
		}
		if head.status == http.StatusSwitchingProtocols || informational == 5 {
			pc.Close()
			return 0, 0, fmt.Errorf("unexpected %d response to %s", head.status, req.Method)
		}
		// 103 Early Hints and the like go on to the client.
		head.copyTo(h)
		w.WriteHeader(head.status)
		clear(h)
	}
	bodyless := req.Method == http.MethodHead || head.status == http.StatusNoContent || head.status == http.StatusNotModified
	if u.headerTimeout > 0 && !(bodyless || head.length >= 0 && int64(pc.br.Buffered()) >= head.length) {
		// The body may take its time (streams); the timeout is for the head.
		pc.SetReadDeadline(time.Time{})
	}
	head.copyTo(h)
	w.WriteHeader(head.status)
	keep := !head.close
	switch {
	case bodyless:
	case head.chunked:
		n, err = copyChunked(w, pc.br, h)
	case head.length >= 0:
		n, err = copyLength(w, pc, head.length)
	default:
		// No length: the body ends when the target closes (HTTP/1.0 style).
		keep = false
		n, err = copyStream(w, pc.br)
	}
	if !pc.req.CompareAndSwap(req, nil) {
		keep = false // the client left and the reaper closed the connection
	}
	// Read before put: once pooled, pc (and its head) is another request's.
	status = head.status
	if err != nil || !keep {
		pc.Close()
	} else {
		u.put(pc)
	}
	_, clientGone := err.(*clientWriteError)
	switch {
	case err == nil:
	case clientGone || ctx.Err() != nil:
		return 499, n, nil // the client hung up mid-body; nobody is there to tell
	default:
		panic(http.ErrAbortHandler)
	}
	return status, n, nil
}

// writeHead writes the head of a bodyless request in one write: request
// line, the client's end-to-end headers, and the forwarding headers.
func (u *upstream) writeHead(pc *upConn, req *http.Request, fwd *forwarding) error {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if strings.ContainsAny(host, "\r\n ") {
		return fmt.Errorf("invalid Host %q", host)
	}
	bp := headBuffers.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, req.Method...)
	b = append(b, ' ')
	if uri := req.RequestURI; uri != "" && (uri[0] == '/' || uri == "*") {
		b = append(b, uri...) // verbatim: apps may depend on query strings Go cannot parse
	} else {
		b = append(b, req.URL.RequestURI()...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	conn := req.Header["Connection"]
	for k, vs := range req.Header {
		if skipRequestHeader(k, vs, conn) {
			continue
		}
		for _, v := range vs {
			b = appendHeader(b, k, v)
		}
	}
	b = fwd.appendHeaders(b, req)
	b = append(b, "\r\n"...)
	_, err := pc.Write(b)
	if cap(b) <= 64<<10 {
		*bp = b
		headBuffers.Put(bp)
	}
	return err
}

var headBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 2<<10); return &b }}

func appendHeader(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	// A CR or LF in a value becomes a space, as http.Header.Write does, so
	// that no value can smuggle a header line.
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '\r' || c == '\n' {
			b = append(b, ' ')
		} else {
			b = append(b, c)
		}
	}
	return append(b, "\r\n"...)
}

// skipRequestHeader drops the hop-by-hop headers (RFC 9110 7.6.1, and those
// the Connection header names), framing (ours), and the forwarding headers
// (rewritten by forwarding).
func skipRequestHeader(k string, vs []string, conn []string) bool {
	switch k {
	case "Host", "Content-Length", "Transfer-Encoding", "Trailer", "Connection", "Proxy-Connection",
		"Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Upgrade",
		"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
		return true
	case "Te":
		// "TE: trailers" is end-to-end in practice (gRPC relies on it).
		return !(len(vs) == 1 && strings.EqualFold(vs[0], "trailers"))
	case "User-Agent":
		return len(vs) == 1 && vs[0] == "" // ReverseProxy's way of saying "send none"
	}
	return len(conn) > 0 && listedIn(k, conn)
}

// listedIn says whether the comma-separated lists vs name k.
func listedIn(k string, vs []string) bool {
	for _, v := range vs {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(tok), k) {
				return true
			}
		}
	}
	return false
}

// respHead is a parsed response head. Keys and values are substrings of
// one string holding the whole head.
type respHead struct {
	status  int
	length  int64 // -1 when unknown
	chunked bool
	close   bool
	kv      []string // key, value, key, value...
	conn    []string // Connection header values
	store   [48]string
}

// maxHead bounds a response head, like http.Transport's MaxResponseHeaderBytes.
const maxHead = 1 << 20

var errHeadTooBig = errors.New("response head larger than 1 MiB")

// readHead reads and parses one response head from br.
func readHead(br *bufio.Reader, head *respHead) error {
	s, err := readHeadBlock(br)
	if err != nil {
		return err
	}
	*head = respHead{length: -1}
	head.kv = head.store[:0]
	line, rest, _ := strings.Cut(s, "\n")
	line = strings.TrimSuffix(line, "\r")
	if len(line) < 12 || !strings.HasPrefix(line, "HTTP/1.") || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return fmt.Errorf("malformed status line %q", line)
	}
	status, err := strconv.Atoi(line[9:12])
	if err != nil || status < 100 {
		return fmt.Errorf("malformed status line %q", line)
	}
	head.status = status
	http10 := line[7] == '0'
	keepAlive := false
	clen := ""
	for rest != "" {
		line, rest, _ = strings.Cut(rest, "\n")
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return errors.New("obsolete header line folding in the response")
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" || !validHeaderKey(k) {
			return fmt.Errorf("malformed response header line %q", line)
		}
		k = canonicalKey(k)
		v = strings.Trim(v, " \t")
		if !validHeaderValue(v) {
			// As http.Transport: passed on, a NUL or ^A breaks strict
			// clients and lenient ones may split it differently.
			return fmt.Errorf("control character in response header line %q", line)
		}
		switch k {
		case "Content-Length":
			// Digits only (RFC 9110 8.6: ParseInt alone takes "+5"); added
			// back once below, and not at all beside chunked.
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || v[0] < '0' || v[0] > '9' || head.length >= 0 && head.length != n {
				return fmt.Errorf("bad Content-Length %q in the response", v)
			}
			head.length, clen = n, v
			continue
		case "Transfer-Encoding":
			if !strings.EqualFold(v, "chunked") {
				return fmt.Errorf("unsupported Transfer-Encoding %q in the response", v)
			}
			head.chunked = true
			continue
		case "Connection":
			head.conn = append(head.conn, v)
			if listedIn("close", head.conn[len(head.conn)-1:]) {
				head.close = true
			}
			if listedIn("keep-alive", head.conn[len(head.conn)-1:]) {
				keepAlive = true
			}
			continue
		case "Keep-Alive", "Proxy-Connection", "Upgrade", "Te", "Proxy-Authenticate":
			continue
		}
		head.kv = append(head.kv, k, v)
	}
	if head.chunked {
		// Chunked wins over a length, which a proxy must not pass on
		// (RFC 9112 6.3): it would frame the decoded body wrongly.
		head.length = -1
	} else if head.length >= 0 {
		head.kv = append(head.kv, "Content-Length", clen)
	}
	if http10 && !keepAlive {
		head.close = true
	}
	return nil
}

// copyTo adds the head's end-to-end headers to h, with one backing array
// for all the value slices.
func (head *respHead) copyTo(h http.Header) {
	vals := make([]string, len(head.kv)/2)
	for i := 0; i < len(head.kv); i += 2 {
		k := head.kv[i]
		if len(head.conn) > 0 && listedIn(k, head.conn) {
			continue
		}
		j := i / 2
		vals[j] = head.kv[i+1]
		if prev, ok := h[k]; ok {
			h[k] = append(prev, vals[j])
		} else {
			h[k] = vals[j : j+1 : j+1]
		}
	}
}

// readHeadBlock returns the response head up to and including the empty
// line, as one string. It usually sits whole in the read buffer.
func readHeadBlock(br *bufio.Reader) (string, error) {
	for {
		buf, _ := br.Peek(br.Buffered())
		if end := headEnd(buf); end > 0 {
			s := string(buf[:end])
			br.Discard(end)
			return s, nil
		}
		if br.Buffered() == br.Size() {
			return readHeadSlow(br)
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
}

// headEnd returns the length of the head in buf, or 0 if it is incomplete.
func headEnd(buf []byte) int {
	for i := 0; i < len(buf); {
		j := indexByte(buf[i:], '\n')
		if j < 0 {
			return 0
		}
		line := buf[i : i+j]
		i += j + 1
		if len(line) == 0 || len(line) == 1 && line[0] == '\r' {
			return i
		}
	}
	return 0
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// readHeadSlow reads a head bigger than the read buffer line by line.
func readHeadSlow(br *bufio.Reader) (string, error) {
	var acc []byte
	for {
		line, err := br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		acc = append(acc, line...)
		if len(acc) > maxHead {
			return "", errHeadTooBig
		}
		if err == nil && (len(line) == 1 || len(line) == 2 && line[0] == '\r') {
			return string(acc), nil
		}
	}
}

func validHeaderKey(k string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// canonicalKey returns k in canonical form without allocating when it
// already is (Go apps) or is a common header (Node apps send lower case).
func canonicalKey(k string) string {
	if isCanonical(k) {
		return k
	}
	if len(k) <= 64 {
		var buf [64]byte
		b := buf[:len(k)]
		upper := true
		for i := 0; i < len(k); i++ {
			c := k[i]
			if upper && 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			} else if !upper && 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b[i] = c
			upper = c == '-'
		}
		if s, ok := commonHeaders[string(b)]; ok {
			return s
		}
		return string(b)
	}
	return textproto.CanonicalMIMEHeaderKey(k)
}

func isCanonical(k string) bool {
	upper := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return false
		}
		upper = c == '-'
	}
	return true
}

var commonHeaders = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept-Ranges", "Access-Control-Allow-Origin", "Age", "Cache-Control", "Connection", "Content-Disposition",
		"Content-Encoding", "Content-Language", "Content-Length", "Content-Security-Policy", "Content-Type",
		"Date", "Etag", "Expires", "Keep-Alive", "Last-Modified", "Link", "Location", "Referrer-Policy",
		"Set-Cookie", "Strict-Transport-Security", "Transfer-Encoding", "Vary", "X-Content-Type-Options",
		"X-Frame-Options", "X-Nextjs-Cache", "X-Nextjs-Prerender", "X-Nextjs-Stale-Time", "X-Powered-By",
		"X-Request-Id", "X-Xss-Protection", "Permissions-Policy", "Server", "Trailer",
	} {
		m[k] = k
	}
	return m
}()

// clientWriteError marks a failed write to the client (it hung up), as
// opposed to a failed read from the target.
type clientWriteError struct{ err error }

func (e *clientWriteError) Error() string { return "writing to the client: " + e.err.Error() }
func (e *clientWriteError) Unwrap() error { return e.err }

// copyLength copies a body of n bytes: what is in the read buffer first,
// straight from it, then through a pooled buffer.
func copyLength(w io.Writer, pc *upConn, n int64) (int64, error) {
	var written int64
	for written < n && pc.br.Buffered() > 0 {
		k := int(min(int64(pc.br.Buffered()), n-written))
		b, _ := pc.br.Peek(k)
		m, err := w.Write(b)
		pc.br.Discard(m)
		written += int64(m)
		if err != nil {
			return written, &clientWriteError{err}
		}
	}
	if written == n {
		return written, nil
	}
	buf := copyBuffers.Get().(*[32 << 10]byte)
	defer copyBuffers.Put(buf)
	for written < n {
		k, err := pc.Conn.Read(buf[:min(int64(len(buf)), n-written)])
		if k > 0 {
			m, werr := w.Write(buf[:k])
			written += int64(m)
			if werr != nil {
				return written, &clientWriteError{werr}
			}
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return written, err
		}
	}
	return written, nil
}

// copyStream copies until EOF (a body with no length), flushing every
// write: such bodies are streams.
func copyStream(w http.ResponseWriter, r io.Reader) (int64, error) {
	buf := copyBuffers.Get().(*[32 << 10]byte)
	defer copyBuffers.Put(buf)
	var written int64
	for {
		k, err := r.Read(buf[:])
		if k > 0 {
			m, werr := w.Write(buf[:k])
			written += int64(m)
			if werr != nil {
				return written, &clientWriteError{werr}
			}
			flush(w)
		}
		if err == io.EOF {
			return written, nil
		}
		if err != nil {
			return written, err
		}
	}
}

// copyChunked copies a chunked body, flushing every chunk, then its trailers.
func copyChunked(w http.ResponseWriter, br *bufio.Reader, h http.Header) (int64, error) {
	n, err := copyStream(w, newChunkedReader(br))
	if err != nil {
		return n, err
	}
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return n, fmt.Errorf("reading trailers: %w", err)
		}
		s := strings.TrimRight(string(line), "\r\n")
		if s == "" {
			return n, nil
		}
		k, v, ok := strings.Cut(s, ":")
		if !ok || !validHeaderKey(k) {
			return n, fmt.Errorf("malformed trailer %q", s)
		}
		h.Add(http.TrailerPrefix+canonicalKey(k), strings.TrimSpace(v))
	}
}

// flush sends what w buffered to the client now.
func flush(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
		return
	}
	_ = http.NewResponseController(w).Flush()
}

// copyBuffers are the body copy buffers of both paths. Pooling array
// pointers means Put never allocates (a *[]byte per Put did).
var copyBuffers = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// bufferPool lends copyBuffers to ReverseProxy.
type bufferPool struct{}

func (bufferPool) Get() []byte { return copyBuffers.Get().(*[32 << 10]byte)[:] }
func (bufferPool) Put(b []byte) {
	if len(b) == 32<<10 {
		copyBuffers.Put((*[32 << 10]byte)(b))
	}
}

var _ net.Conn = (*upConn)(nil)

func newChunkedReader(br *bufio.Reader) io.Reader { return httputil.NewChunkedReader(br) }

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

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

type timeoutError struct{ msg string }

func (e *timeoutError) Error() string { return e.msg }
func (e *timeoutError) Timeout() bool { return true }
func (*timeoutError) Temporary() bool { return true }
