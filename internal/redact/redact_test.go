package redact

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	r := New("sk_live_abcdef", "abc", "sk_live_abcdef_more")
	if got := r.String("key=sk_live_abcdef_more and sk_live_abcdef abc"); got != "key=[REDACTED] and [REDACTED] abc" {
		t.Errorf("got %q", got)
	}
	base := errors.New("auth failed for sk_live_abcdef")
	err := r.Error(fmt.Errorf("step: %w", base))
	if strings.Contains(err.Error(), "sk_live") || !errors.Is(err, base) {
		t.Errorf("error: %v", err)
	}
	var b strings.Builder
	w := r.Writer(&b)
	w.Write([]byte("line one sk_li"))
	w.Write([]byte("ve_abcdef\npartial sk_live_ab"))
	w.Write([]byte("cdef"))
	w.Close()
	if got := b.String(); got != "line one [REDACTED]\npartial [REDACTED]" {
		t.Errorf("writer: %q", got)
	}
	// A multi-line secret (a PEM key from NAME_FILE) split across writes.
	pem := "-----BEGIN KEY-----\nabcdef\n-----END KEY-----"
	r2 := New(pem)
	var b2 strings.Builder
	w2 := r2.Writer(&b2)
	for _, part := range []string{"key:\n-----BEGIN", " KEY-----\nabc", "def\n-----END KEY-----\nafter\n"} {
		w2.Write([]byte(part))
	}
	w2.Close()
	if got := b2.String(); got != "key:\n[REDACTED]\nafter\n" {
		t.Errorf("multi-line secret: %q", got)
	}
	var nilR *Redactor
	if nilR.String("x") != "x" {
		t.Error("nil redactor")
	}
}
