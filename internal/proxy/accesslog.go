package proxy

import (
	"bufio"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// accessLog writes one JSON object per request. Lines are buffered and
// flushed a few times a second (and on Close), so that logging costs a
// buffered write, not a syscall, per request.
type accessLog struct {
	mu  sync.Mutex
	bw  *bufio.Writer
	buf []byte
}

// WithAccessLog writes a JSON line per request to w: time, store, app,
// method, host, path, query (values of secret-looking parameters
// redacted), status, duration_ms, bytes, target, client. Headers (cookies,
// authorization) are never logged. Default: off.
func WithAccessLog(w io.Writer) Option {
	return func(c *config) { c.accessLog = w }
}

func newAccessLog(w io.Writer) *accessLog {
	return &accessLog{bw: bufio.NewWriterSize(w, 64<<10)}
}

// entry is what one line says.
type entry struct {
	start   time.Time
	service string
	req     *http.Request
	status  int
	bytes   int64
	target  string
	cache   string
}

func (l *accessLog) write(e *entry) {
	store, app := SplitService(e.service)
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buf[:0]
	b = append(b, `{"time":`...)
	b = strconv.AppendQuote(b, e.start.UTC().Format(time.RFC3339Nano))
	b = appendField(b, "store", store)
	b = appendField(b, "app", app)
	b = appendField(b, "method", e.req.Method)
	b = appendField(b, "host", e.req.Host)
	b = appendField(b, "path", e.req.URL.Path)
	if q := e.req.URL.RawQuery; q != "" {
		b = appendField(b, "query", redactQuery(q))
	}
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(time.Since(e.start).Microseconds())/1000, 'f', 3, 64)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, e.bytes, 10)
	if e.target != "" {
		b = appendField(b, "target", e.target)
	}
	if e.cache != "" {
		b = appendField(b, "cache", e.cache)
	}
	b = appendField(b, "client", peer(e.req))
	b = append(b, "}\n"...)
	l.bw.Write(b)
	l.buf = b
}

func appendField(b []byte, k, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, k...)
	b = append(b, '"', ':')
	return strconv.AppendQuote(b, v)
}

func (l *accessLog) flush() {
	l.mu.Lock()
	l.bw.Flush()
	l.mu.Unlock()
}

// secretParams are substrings of query parameter names whose values the
// access log never shows; secretNames are whole names.
var (
	secretParams = []string{"token", "secret", "password", "passwd", "auth", "session", "signature",
		"credential", "jwt", "apikey", "api_key", "access_key", "private"}
	secretNames = []string{"key", "sig", "code", "pwd", "otp", "nonce", "ticket", "pass", "x-amz-credential"}
)

// redactQuery replaces the values of secret-looking parameters with
// "REDACTED", keeping the rest of the query as sent.
func redactQuery(q string) string {
	var out strings.Builder
	for i, part := range strings.Split(q, "&") {
		if i > 0 {
			out.WriteByte('&')
		}
		name, _, hasValue := strings.Cut(part, "=")
		if hasValue && isSecretName(name) {
			out.WriteString(name)
			out.WriteString("=REDACTED")
			continue
		}
		out.WriteString(part)
	}
	return out.String()
}

func isSecretName(name string) bool {
	n := strings.ToLower(name)
	for _, s := range secretParams {
		if strings.Contains(n, s) {
			return true
		}
	}
	return slices.Contains(secretNames, n)
}
