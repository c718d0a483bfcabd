//go:build integration

package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/proxy"
)

// limitingCA is a reverse proxy in front of Pebble that answers new orders
// with 429 and Retry-After while limit is on, as Let's Encrypt does past a
// rate limit. Everything else (and every order while limit is off) reaches
// the real ACME server: Pebble builds its URLs from the Host header, which
// the proxy passes on, so the client keeps talking through the proxy.
type limitingCA struct {
	srv      *httptest.Server
	limit    atomic.Bool
	mu       sync.Mutex
	refused  []time.Time
	accepted []time.Time
	orderURL string // path of newOrder, from Pebble's directory
}

func (l *limitingCA) front(t *testing.T) func(string, *x509.CertPool) (string, *x509.CertPool) {
	return func(dir string, roots *x509.CertPool) (string, *x509.CertPool) {
		u, err := url.Parse(dir)
		if err != nil {
			t.Fatal(err)
		}
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
		t.Cleanup(tr.CloseIdleConnections)
		resp, err := (&http.Client{Transport: tr}).Get(dir)
		if err != nil {
			t.Fatalf("Pebble's directory: %v", err)
		}
		var d struct {
			NewOrder string `json:"newOrder"`
		}
		err = json.NewDecoder(resp.Body).Decode(&d)
		resp.Body.Close()
		no, perr := url.Parse(d.NewOrder)
		if err != nil || perr != nil || d.NewOrder == "" {
			t.Fatalf("Pebble's directory has no newOrder: %v %v", err, perr)
		}
		l.orderURL = no.Path
		rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
		rp.Transport = tr
		l.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.URL.Path == l.orderURL {
				l.mu.Lock()
				if l.limit.Load() {
					l.refused = append(l.refused, time.Now())
					l.mu.Unlock()
					w.Header().Set("Content-Type", "application/problem+json")
					w.Header().Set("Retry-After", "60")
					w.WriteHeader(http.StatusTooManyRequests)
					io.WriteString(w, `{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many new orders recently (test front)","status":429}`)
					return
				}
				l.accepted = append(l.accepted, time.Now())
				l.mu.Unlock()
			}
			rp.ServeHTTP(w, r) // r.Host stays the front's: Pebble answers with its URLs
		}))
		l.srv.StartTLS()
		t.Cleanup(l.srv.Close)
		mine := roots.Clone()
		mine.AddCert(l.srv.Certificate())
		return l.srv.URL + u.Path, mine
	}
}

func (l *limitingCA) counts() (refused, accepted int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.refused), len(l.accepted)
}

// A CA answering 429 (rate limited) to a new name's order: serving the
// names that have certificates goes on untouched, the failing name fails
// its handshakes at once with the reason and is served over plain HTTP,
// the order is retried with back-off (not at every maintenance tick), and
// once the CA accepts orders again the retry gets the certificate.
func TestRateLimitedOrderBacksOffAndNeverBlocksServing(t *testing.T) {
	ca := &limitingCA{}
	env := newEdgeEnv(t, envOptions{caFront: ca.front(t)})
	if env == nil {
		return
	}
	env.deploy("us/web", "shop.test")
	env.deploy("eu/web", "late.test")
	if err := env.m.Configure(context.Background(), "us", []string{"shop.test"}, proxy.Site{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := env.get(env.client(env.roots), env.httpsURL("shop.test", "/")); err != nil {
		t.Fatalf("first certificate through the front: %v (certs %+v)", err, env.m.Certs())
	}

	ca.limit.Store(true)
	// Visitors of the name with a certificate keep coming on fresh
	// connections for the whole test.
	var failures, total atomic.Int64
	var slowest atomic.Int64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			c := env.client(env.roots)
			began := time.Now()
			resp, body, err := env.get(c, env.httpsURL("shop.test", "/"))
			if d := int64(time.Since(began)); d > slowest.Load() {
				slowest.Store(d)
			}
			total.Add(1)
			if err != nil || resp.StatusCode != 200 || body != "hello from us/web" {
				failures.Add(1)
				t.Logf("request while rate limited: %v", err)
			}
			c.CloseIdleConnections()
		}
	}()
	defer func() { close(stop); <-done }()

	if err := env.m.Configure(context.Background(), "eu", []string{"late.test"}, proxy.Site{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the rate-limited order to be reported", func() bool {
		cs := env.certOf("late.test")
		return cs.State == "failed" && strings.Contains(cs.LastError, "429")
	})
	firstRefusal := time.Now()
	t.Logf("reported: %s", env.certOf("late.test").LastError)
	// Its handshakes fail at once with the reason, not after a wait.
	began := time.Now()
	if _, err := env.servedCert("late.test"); err == nil {
		t.Fatal("late.test has a certificate while its orders are refused")
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("a handshake for the rate-limited name took %s", d)
	}
	// Plain HTTP serves it rather than redirecting to a broken HTTPS.
	if resp, body, err := env.get(env.client(nil), env.httpURL("late.test", "/")); err != nil || resp.StatusCode != 200 || body != "hello from eu/web" {
		t.Errorf("plain HTTP while rate limited: %v %v %q", err, resp, body)
	}

	// Back-off: maintenance ticks every second and DNS rechecks every
	// 200 ms, yet no new order is sent for a good while.
	time.Sleep(15 * time.Second)
	refused, _ := ca.counts()
	if refused > 2 {
		t.Fatalf("%d orders refused within 15 s of the first 429: no back-off", refused)
	}
	ca.limit.Store(false)

	waitFor(t, 90*time.Second, "the retried order to get a certificate", func() bool {
		return env.certOf("late.test").State == "valid"
	})
	retried := time.Since(firstRefusal)
	t.Logf("certificate after the back-off: %s after the 429 (%d refused)", retried.Round(time.Second), refused)
	if retried < 30*time.Second {
		t.Errorf("the order was retried %s after a 429 with Retry-After: 60", retried)
	}
	resp, body, err := env.get(env.client(env.roots), env.httpsURL("late.test", "/"))
	if err != nil || resp.StatusCode != 200 || body != "hello from eu/web" {
		t.Fatalf("HTTPS once the certificate came: %v %v %q", err, resp, body)
	}
	if resp, _, err := env.get(env.client(nil), env.httpURL("late.test", "/")); err != nil || resp.StatusCode != http.StatusPermanentRedirect {
		t.Errorf("plain HTTP once the certificate came: %v %v, want 308", err, resp)
	}
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d of %d requests to the name with a certificate failed while the CA rate-limited", n, total.Load())
	}
	if d := time.Duration(slowest.Load()); d > 3*time.Second {
		t.Errorf("slowest request to the name with a certificate: %s", d)
	}
	t.Logf("%d requests served meanwhile, slowest %s", total.Load(), time.Duration(slowest.Load()).Round(time.Millisecond))
}
