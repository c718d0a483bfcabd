package proxy

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// An unmodified app has no /healthz: the default check (MaxStatus) takes its
// "/" answering 404 as up, a 500 as not; a configured path stays strict.
func TestGateMaxStatus(t *testing.T) {
	status := http.StatusNotFound
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	lenient := HealthCheck{Path: "/", MaxStatus: 500, Interval: 10 * time.Millisecond, Deadline: 300 * time.Millisecond}
	strict := HealthCheck{Path: "/healthz", Interval: 10 * time.Millisecond, Deadline: 300 * time.Millisecond}
	if err := gate(context.Background(), "s", []string{addr}, lenient.withDefaults()); err != nil {
		t.Errorf("lenient gate on 404: %v", err)
	}
	if err := gate(context.Background(), "s", []string{addr}, strict.withDefaults()); err == nil {
		t.Errorf("strict gate passed a 404")
	}
	status = http.StatusInternalServerError
	if err := gate(context.Background(), "s", []string{addr}, lenient.withDefaults()); err == nil {
		t.Errorf("lenient gate passed a 500")
	}
	if lenient.Rule() != "GET / answers below 500" || strict.Rule() != "GET /healthz answers 2xx or 3xx" {
		t.Errorf("rules: %q %q", lenient.Rule(), strict.Rule())
	}
	// Nothing listening: the port must accept connections first.
	srv.Close()
	if err := gate(context.Background(), "s", []string{addr}, lenient.withDefaults()); err == nil {
		t.Errorf("gate passed with nothing listening")
	}
}

// The check crosses the API and the router's state file as JSON: the
// default check's leniency must survive it.
func TestHealthCheckJSONKeepsMaxStatus(t *testing.T) {
	b, err := json.Marshal(HealthCheck{Path: "/", MaxStatus: 500, Interval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var h HealthCheck
	if err := json.Unmarshal(b, &h); err != nil || h.MaxStatus != 500 || h.Interval != time.Second {
		t.Errorf("round trip of %s: %+v %v", b, h, err)
	}
}
