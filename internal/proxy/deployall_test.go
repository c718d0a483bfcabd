package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// One failing app of a store means no app of it swaps.
func TestDeployAllIsAllOrNothing(t *testing.T) {
	r, front := newTestRouter(t)
	web1, api1 := newBackend(t, "web1"), newBackend(t, "api1")
	deploy(t, r, "us/web", []string{"us.localhost"}, web1.addr)
	deploy(t, r, "us/api", []string{"api.us.localhost"}, api1.addr)
	web2, api2 := newBackend(t, "web2"), newBackend(t, "api2")
	api2.healthStatus.Store(500)
	h := fastHealth
	h.Deadline = 300 * time.Millisecond
	_, err := r.DeployAll(context.Background(), Cutover{Services: []DeployRequest{
		{Service: "us/web", Targets: []string{web2.addr}, Health: h},
		{Service: "us/api", Targets: []string{api2.addr}, Health: h},
	}})
	var ge *GateError
	if !errors.As(err, &ge) || ge.Service != "us/api" {
		t.Fatalf("err = %v, want the api's gate error", err)
	}
	if _, body, _ := get(t, front, "us.localhost", "/"); body != "web1" {
		t.Errorf("web serves %q after a failed cutover, want web1", body)
	}
	if _, body, _ := get(t, front, "api.us.localhost", "/"); body != "api1" {
		t.Errorf("api serves %q after a failed cutover, want api1", body)
	}
	if web2.hits.Load() != 0 {
		t.Errorf("the healthy new web got %d requests", web2.hits.Load())
	}

	api2.healthStatus.Store(200)
	var swappedSeen []string
	res, err := r.DeployAll(context.Background(), Cutover{
		Services: []DeployRequest{
			{Service: "us/web", Targets: []string{web2.addr}, Health: fastHealth},
			{Service: "us/api", Targets: []string{api2.addr}, Health: fastHealth},
		},
		Swapped: func() {
			for _, s := range r.Services() {
				swappedSeen = append(swappedSeen, s.Targets[0].Address)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(swappedSeen) != 2 || !strings.Contains(strings.Join(swappedSeen, " "), web2.addr) || !strings.Contains(strings.Join(swappedSeen, " "), api2.addr) {
		t.Errorf("at Swapped the router had %v", swappedSeen)
	}
	if len(res.Old) != 2 || len(res.Services) != 2 {
		t.Errorf("result %+v", res)
	}
	if _, body, _ := get(t, front, "us.localhost", "/"); body != "web2" {
		t.Errorf("web serves %q", body)
	}
	if _, body, _ := get(t, front, "api.us.localhost", "/"); body != "api2" {
		t.Errorf("api serves %q", body)
	}
}

// An app the store no longer has goes in the same swap, and a new app may
// take its host name.
func TestDeployAllRemovesInTheSameSwap(t *testing.T) {
	r, front := newTestRouter(t)
	old := newBackend(t, "old")
	deploy(t, r, "us/nuxt", []string{"us.localhost"}, old.addr)
	deploy(t, r, "us/extra", []string{"extra.us.localhost"}, old.addr)
	nw := newBackend(t, "next")
	res, err := r.DeployAll(context.Background(), Cutover{
		Services: []DeployRequest{{Service: "us/next", Hosts: []string{"us.localhost"}, Targets: []string{nw.addr}, Health: fastHealth}},
		Remove:   []string{"us/nuxt", "us/extra", "us/never-existed"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 2 {
		t.Errorf("removed %v", res.Removed)
	}
	if _, body, _ := get(t, front, "us.localhost", "/"); body != "next" {
		t.Errorf("us.localhost serves %q", body)
	}
	if code, _, _ := get(t, front, "extra.us.localhost", "/"); code != 404 {
		t.Errorf("removed app answers %d, want 404", code)
	}
	// Without Remove, taking another service's host is refused.
	other := newBackend(t, "other")
	_, err = r.DeployAll(context.Background(), Cutover{Services: []DeployRequest{{Service: "eu/web", Hosts: []string{"us.localhost"}, Targets: []string{other.addr}, Health: fastHealth}}})
	if !errors.Is(err, ErrHostInUse) {
		t.Errorf("host theft: %v", err)
	}
	// Two services of one cutover cannot claim the same host.
	_, err = r.DeployAll(context.Background(), Cutover{Services: []DeployRequest{
		{Service: "eu/a", Hosts: []string{"eu.localhost"}, Targets: []string{other.addr}, Health: fastHealth},
		{Service: "eu/b", Hosts: []string{"eu.localhost"}, Targets: []string{other.addr}, Health: fastHealth},
	}})
	if !errors.Is(err, ErrHostInUse) {
		t.Errorf("duplicate host in one cutover: %v", err)
	}
}

// A stopped service answers 503 with Retry-After and its maintenance page,
// and keeps doing so after a restart of the router.
func TestMaintenancePage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "router.json")
	r, err := NewRouter(path, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	b := newBackend(t, "a")
	deploy(t, r, "us/web", []string{"us.localhost"}, b.addr)
	if _, err := r.DeployAll(context.Background(), Cutover{Services: []DeployRequest{{Service: "us/web", Maintenance: "Down for maintenance."}}}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	r2, err := NewRouter(path, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	for _, rt := range []*Router{r, r2} {
		rec := &recorder{header: http.Header{}}
		req, _ := http.NewRequest(http.MethodGet, "http://us.localhost/", nil)
		rt.ServeHTTP(rec, req)
		if rec.code != 503 || rec.header.Get("Retry-After") == "" || !strings.Contains(rec.body.String(), "Down for maintenance.") {
			t.Errorf("stopped service: %d %q %q", rec.code, rec.header.Get("Retry-After"), rec.body.String())
		}
	}
	if st := r2.Services(); st[0].Maintenance == "" {
		t.Errorf("status does not say the service is stopped: %+v", st[0])
	}
}

// The gate polls fast after a failed first check instead of waiting a whole
// interval, and the drain of an idle target ends at once.
func TestFastGateAndIdleDrain(t *testing.T) {
	r, _ := newTestRouter(t)
	a := newBackend(t, "a")
	deploy(t, r, "us/web", []string{"us.localhost"}, a.addr)
	// A target that starts listening 60ms after the gate began.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	go func() {
		time.Sleep(60 * time.Millisecond)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
		t.Cleanup(func() { srv.Close() })
		srv.Serve(l)
	}()
	h := HealthCheck{Path: "/health", Interval: time.Second, Timeout: time.Second, Deadline: 5 * time.Second}
	start := time.Now()
	res, err := r.Deploy(context.Background(), DeployRequest{Service: "us/web", Targets: []string{addr}, Health: h, DrainTimeout: 10 * time.Second})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if took > 900*time.Millisecond {
		t.Errorf("deploy took %s with a 1s interval: the gate waited the interval after its first failure, or the drain waited", took)
	}
	if res.DrainTook > 200*time.Millisecond {
		t.Errorf("drain of an idle target took %s", res.DrainTook)
	}
}

type recorder struct {
	code   int
	header http.Header
	body   strings.Builder
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = 200
	}
	return r.body.Write(p)
}
func (r *recorder) WriteHeader(c int) { r.code = c }
