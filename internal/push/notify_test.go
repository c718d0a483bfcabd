package push

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/jobs"
	"github.com/slipway-dev/slipway/internal/source"
)

func TestNotifierSignsAndRetries(t *testing.T) {
	var mu sync.Mutex
	var attempts []time.Time
	var bodies [][]byte
	var sigs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, time.Now())
		bodies = append(bodies, b)
		sigs = append(sigs, r.Header.Get("X-Slipway-Signature-256"))
		if len(attempts) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	f := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(f, []byte("notify-secret\n"), 0o600)
	n, err := NewNotifier(srv.URL+"/hook", f, nil)
	if err != nil {
		t.Fatal(err)
	}
	n.Backoff = 20 * time.Millisecond
	n.Notify(&jobs.Job{ID: "j-7", Store: "us", Status: jobs.StatusSucceeded, Commit: "abc"})
	n.Wait(t.Context())
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) != 3 {
		t.Fatalf("%d attempts, want 3 (two 503s, then a 204)", len(attempts))
	}
	if gap := attempts[2].Sub(attempts[1]); gap < 35*time.Millisecond {
		t.Errorf("no backoff between retries: %s", gap)
	}
	for i, b := range bodies {
		if sigs[i] != "sha256="+source.Sign([]byte("notify-secret"), b) {
			t.Fatalf("attempt %d: signature %q does not verify", i, sigs[i])
		}
		if string(b) != string(bodies[0]) {
			t.Fatal("a retry sent another body")
		}
	}
	var msg Notification
	if err := json.Unmarshal(bodies[0], &msg); err != nil || msg.Event != "job.finished" || msg.Job.ID != "j-7" || msg.Job.Status != jobs.StatusSucceeded {
		t.Fatalf("message %s: %v", bodies[0], err)
	}
}

func TestNotifierStopsOn4xx(t *testing.T) {
	var mu sync.Mutex
	n400 := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n400++
		mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer srv.Close()
	f := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(f, []byte("s"), 0o600)
	n, err := NewNotifier(srv.URL, f, nil)
	if err != nil {
		t.Fatal(err)
	}
	n.Backoff = time.Millisecond
	n.Notify(&jobs.Job{ID: "j-1"})
	n.Wait(t.Context())
	if n400 != 1 {
		t.Fatalf("a 400 was retried: %d attempts", n400)
	}
	if _, err := NewNotifier(srv.URL, "", nil); err == nil {
		t.Fatal("an unsigned notifier was accepted")
	}
	if _, err := NewNotifier("ftp://x", f, nil); err == nil {
		t.Fatal("a non-http URL was accepted")
	}
}
