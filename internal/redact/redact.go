// Package redact removes secret values from text before it is logged, stored or returned.
package redact

import (
	"bytes"
	"io"
	"sort"
	"strings"
	"sync"
)

// Mask replaces every secret value.
const Mask = "[REDACTED]"

// Redactor replaces known secret values. The zero value redacts nothing.
type Redactor struct {
	values []string // longest first, so a value containing another is masked whole
}

// New returns a Redactor for values; values shorter than 4 bytes are ignored
// (masking "1" everywhere would destroy every log line and protect nothing).
func New(values ...string) *Redactor {
	r := &Redactor{}
	seen := map[string]bool{}
	for _, v := range values {
		if len(v) >= 4 && !seen[v] {
			seen[v] = true
			r.values = append(r.values, v)
		}
	}
	sort.Slice(r.values, func(i, j int) bool { return len(r.values[i]) > len(r.values[j]) })
	return r
}

// String redacts s.
func (r *Redactor) String(s string) string {
	if r == nil {
		return s
	}
	for _, v := range r.values {
		s = strings.ReplaceAll(s, v, Mask)
	}
	return s
}

// Error wraps err so that its message is redacted; nil stays nil.
func (r *Redactor) Error(err error) error {
	if err == nil || r == nil || len(r.values) == 0 {
		return err
	}
	return &redactedError{msg: r.String(err.Error()), err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// Writer redacts what is written to it before passing it to w. It holds back
// just enough of the end (less than the longest secret) that a secret split
// across writes, or across lines, is still caught whole; Close flushes the rest.
func (r *Redactor) Writer(w io.Writer) io.WriteCloser {
	return &writer{r: r, w: w}
}

type writer struct {
	mu  sync.Mutex
	r   *Redactor
	w   io.Writer
	buf []byte
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	keep := 0
	if w.r != nil && len(w.r.values) > 0 {
		keep = len(w.r.values[0]) - 1 // values are sorted longest first
	}
	cut := len(w.buf) - keep
	if cut <= 0 {
		return len(p), nil
	}
	// Never cut through a secret that starts before the cut.
	if w.r != nil {
		for _, v := range w.r.values {
			for i := 0; ; {
				j := bytes.Index(w.buf[i:], []byte(v))
				if j < 0 {
					break
				}
				start := i + j
				if start < cut && start+len(v) > cut {
					cut = start
				}
				i = start + 1
			}
		}
	}
	return len(p), w.flush(cut)
}

func (w *writer) flush(n int) error {
	if n <= 0 {
		return nil
	}
	out := w.r.String(string(w.buf[:n]))
	w.buf = append(w.buf[:0], w.buf[n:]...)
	_, err := io.WriteString(w.w, out)
	return err
}

func (w *writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flush(len(w.buf))
}
