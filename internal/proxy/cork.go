package proxy

import (
	"context"
	"net"
	"net/http"
	"sync"
)

// Answers the router writes from memory (static files, edge-cache hits)
// go out in one write system call, head and body together. net/http
// writes through a 4 KiB buffer: a 30 KiB answer costs two writes, and on
// loopback or a fast link each write is a TCP push of its own (the
// kernel's send path, the peer's receive path and a wakeup, twice). nginx
// avoids that with TCP_NOPUSH around sendfile; we hold the bytes in user
// space while the handler writes and send them at once, which also costs
// no setsockopt calls.

// connKey is the context key of a plain-HTTP visitor connection.
type connKey struct{}

// withConn is http.Server.ConnContext: it makes the accepted connection
// reachable from its requests, for corking. Only plain connections from
// LimitListener qualify; TLS connections keep net/http's writes.
func withConn(ctx context.Context, c net.Conn) context.Context {
	if pc, ok := c.(*prefixConn); ok {
		c = pc.Conn // handed over by the Front (front.go); writes go straight to it
	}
	if lc, ok := c.(*limitedConn); ok {
		return context.WithValue(ctx, connKey{}, lc)
	}
	return ctx
}

// corkMax is the largest answer held back; anything bigger is written as
// net/http writes it.
const corkMax = 128 << 10

// cork is a connection's held-back bytes while a handler writes one answer.
type cork struct {
	on  bool
	buf *[]byte // copies of what net/http wrote through its buffer
	// body is the answer's body, immutable for the life of the release
	// (a static file, a cached answer). net/http hands the part of it that
	// does not fit its buffer straight down; that tail is kept by
	// reference and sent from where it lies, with writev.
	body, tail []byte
	vec        [2][]byte
	bufs       net.Buffers
}

var corkBufs = sync.Pool{New: func() any { b := make([]byte, 0, 80<<10); return &b }}

// heldWrite is Write while corked: p joins the held bytes, unless they
// would grow past corkMax; then what was held goes out first, then p.
func (c *limitedConn) heldWrite(p []byte) (int, error) {
	k := &c.cork
	b := k.buf
	if k.tail == nil && isTail(p, k.body) {
		k.tail = p
		return len(p), nil
	}
	if k.tail != nil { // something after the body: keep the order
		*b, k.tail = append(*b, k.tail...), nil
	}
	if len(*b)+len(p) <= corkMax {
		*b = append(*b, p...)
		return len(p), nil
	}
	if len(*b) > 0 {
		if _, err := c.writeNow(*b); err != nil {
			return 0, err
		}
		*b = (*b)[:0]
	}
	return c.writeNow(p)
}

// corked returns the connection of req when its answer can be corked: an
// HTTP/1.x request on a plain connection from LimitListener, where only the
// handler's goroutine writes until it returns, served by net/http or by
// the Front.
func corked(w http.ResponseWriter, req *http.Request) *limitedConn {
	if req.ProtoMajor != 1 {
		return nil
	}
	if fw, ok := w.(*frontWriter); ok {
		lc, _ := fw.fc.c.(*limitedConn)
		return lc
	}
	lc, _ := req.Context().Value(connKey{}).(*limitedConn)
	return lc
}

// writeCorked writes one whole answer (status, the headers already set
// and body) with a single write on the connection when it can, through
// net/http as usual otherwise. It returns the body bytes written.
func writeCorked(w http.ResponseWriter, req *http.Request, status int, body []byte) int {
	lc := corked(w, req)
	f, ok := w.(http.Flusher)
	if lc == nil || !ok || len(body) > corkMax-8<<10 || lc.cork.on {
		w.WriteHeader(status)
		n, _ := w.Write(body)
		return n
	}
	lc.cork.on, lc.cork.buf, lc.cork.body = true, corkBufs.Get().(*[]byte), body
	w.WriteHeader(status)
	n, _ := w.Write(body)
	f.Flush() // net/http's buffers into the cork
	lc.uncork()
	return n
}

// uncork writes what was held and turns holding off. net/http believes
// the answer written already, so a failed write closes the connection:
// its next read fails and the server lets it go.
func (c *limitedConn) uncork() {
	k := &c.cork
	b, tail := k.buf, k.tail
	k.on, k.buf, k.body, k.tail = false, nil, nil, nil
	var err error
	switch {
	case tail != nil:
		c.moveDeadline()
		k.vec = [2][]byte{*b, tail}
		k.bufs = k.vec[:]
		_, err = k.bufs.WriteTo(c.Conn)
		k.vec, k.bufs = [2][]byte{}, nil
	case len(*b) > 0:
		_, err = c.writeNow(*b)
	}
	if err != nil {
		c.Conn.Close()
	}
	*b = (*b)[:0]
	corkBufs.Put(b)
}

// isTail says whether p is the end of body, the same bytes in memory:
// what net/http passes down unbuffered from a Write of body.
func isTail(p, body []byte) bool {
	return len(p) > 0 && len(p) <= len(body) && &p[len(p)-1] == &body[len(body)-1]
}

// writeNow is the connection's write without holding.
func (c *limitedConn) writeNow(p []byte) (int, error) {
	c.moveDeadline()
	return c.Conn.Write(p)
}
