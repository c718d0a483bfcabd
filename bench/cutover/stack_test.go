//go:build linux

package main

import (
	"testing"
	"time"
)

func TestServeLog(t *testing.T) {
	l := &serveLog{addrRel: map[string]int{}, releases: map[int]bool{}, gateAt: map[int]time.Time{}, ready: make(chan string, 1)}
	for _, s := range []string{
		`slipway serve: router on http://127.0.0.1:35393, api on /tmp/x/.slipway/slipway.sock`,
		`time=2026-11-22T05:48:50.800Z level=INFO msg="release us-v2 (deploy-only) for commit b86c4ea1fef8" store=us stage=""`,
		`time=2026-11-22T05:48:50.805Z level=INFO msg="started storefront-unified-nextjs at 127.0.0.1:43835" store=us stage=deploy`,
		`time=2026-11-22T05:48:50.806Z level=INFO msg="started storefront-middleware at 127.0.0.1:40000" store=us stage=deploy`,
		`time=2026-11-22T05:48:51.811Z level=INFO msg="health gate" service=us/storefront-unified-nextjs targets=[127.0.0.1:43835] path=/healthz`,
		`time=2026-11-22T05:48:51.812Z level=INFO msg=swapped service=us/storefront-middleware active=[127.0.0.1:40000] draining=[] gate=1ms`,
		`time=2026-11-22T05:48:51.814Z level=INFO msg=swapped service=us/storefront-unified-nextjs active=[127.0.0.1:43835] draining=[127.0.0.1:38635] gate=1.054478ms`,
		`time=2026-11-22T05:48:53.792Z level=INFO msg=drained service=us/storefront-unified-nextjs old=[127.0.0.1:38635] took=1.978411582s cut=3`,
		`time=2026-11-22T05:48:53.800Z level=WARN msg="instance exited" store=us`,
	} {
		l.line(s)
	}
	if a := <-l.ready; a != "127.0.0.1:35393" {
		t.Errorf("router %q", a)
	}
	if len(l.switches) != 1 {
		t.Fatalf("switches %+v", l.switches)
	}
	sw := l.switches[0]
	at, _ := time.Parse(time.RFC3339Nano, "2026-11-22T05:48:51.814Z")
	if sw.release != 2 || !sw.at.Equal(at) || sw.took != 1978411582*time.Nanosecond || sw.cut != 3 {
		t.Errorf("switch %+v", sw)
	}
	if g := l.gateAt[2]; g.IsZero() || !g.Before(at) {
		t.Errorf("gate %v", g)
	}
	if !l.releases[2] || len(l.problems) != 1 {
		t.Errorf("releases %v problems %q", l.releases, l.problems)
	}
}

func TestSummariseStack(t *testing.T) {
	base := time.Unix(1000, 0)
	ms := func(n int) time.Time { return base.Add(time.Duration(n) * time.Millisecond) }
	sw := []switchover{{release: 1, at: ms(0)}, {release: 2, at: ms(100)}}
	gate := map[int]time.Time{1: ms(-5), 2: ms(95)}
	samples := []sample{
		{intended: ms(50), end: ms(52), release: 1, status: 200},   // fine
		{intended: ms(100), end: ms(102), release: 1, status: 200}, // due at the logged swap: within tolerance
		{intended: ms(102), end: ms(104), release: 1, status: 200}, // stale
		{intended: ms(90), end: ms(94), release: 2, status: 200},   // early: before its gate
		{intended: ms(96), end: ms(99), release: 2, status: 200},   // after the gate began: fine
		{intended: ms(10), end: ms(12), release: 7, status: 200},   // unknown
		{intended: ms(10), end: ms(2010), slow: true, release: -1, status: 200},
		{intended: ms(10), end: ms(20), status: 502},
	}
	known := map[int]bool{1: true, 2: true}
	s := summariseStack(samples, sw,
		func(x sample) bool { return !x.slow },
		func(x sample) bool { return known[x.release] },
		func(x sample) bool { g, ok := gate[x.release]; return !ok || g.After(x.end) },
		time.Millisecond)
	if s.requests != 8 || s.failed() != 1 || s.status5xx != 1 || s.stale != 1 || s.early != 1 || s.unknown != 1 || s.attributable != 6 || s.slow != 1 || s.releases != 2 {
		t.Errorf("%+v", s)
	}
}
