package server

import (
	"bytes"
	"context"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/pipeline"
)

// load sends about rate requests a second to host until stop is called
// (bounded to 20 s) and returns how many were sent and how many failed.
func (h *harness) load(host string, rate int) (stop func() (total, failed int64)) {
	var tot, bad atomic.Int64
	defer time.Sleep(300 * time.Millisecond) // traffic before the operation
	done := make(chan struct{})
	var wg sync.WaitGroup
	workers := 6
	every := time.Duration(workers) * time.Second / time.Duration(rate)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	limit := time.After(20 * time.Second)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-limit:
					return
				case <-t.C:
				}
				req, _ := http.NewRequest(http.MethodGet, "http://"+h.s.HTTPAddr()+"/release", nil)
				req.Host = host
				tot.Add(1)
				resp, err := client.Do(req)
				if err != nil {
					bad.Add(1)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					bad.Add(1)
				}
			}
		}()
	}
	return func() (int64, int64) {
		time.Sleep(300 * time.Millisecond) // and after it
		close(done)
		wg.Wait()
		return tot.Load(), bad.Load()
	}
}

func (h *harness) ids(match map[string]string) []string {
	var out []string
	for _, in := range h.instances(match) {
		out = append(out, in.ID)
	}
	return out
}

func TestRestartAndScaleUnderLoad(t *testing.T) {
	h := start(t, t.TempDir())
	app := h.app("v1")
	app.Instances = 2
	rel, err, evs := h.deploy(pipeline.DeployRequest{Commit: "c1", Apps: []pipeline.AppDeploy{app},
		Hooks: pipeline.Hooks{Install: pipeline.Hook{Command: "./testapp write installs x"}}})
	if err != nil {
		t.Fatalf("%v\n%v", err, evs)
	}
	before := h.ids(map[string]string{driver.LabelRole: "web"})
	c := NewClient(h.dir)
	ctx := context.Background()

	stop := h.load("us.localhost", 300)
	var events []string
	err = c.Op(ctx, "restart", "us", func(e pipeline.Event) { events = append(events, e.Message) })
	total, failed := stop()
	if err != nil {
		t.Fatal(err)
	}
	if failed != 0 || total < 50 {
		t.Errorf("restart under load: %d of %d requests failed", failed, total)
	}
	after := h.ids(map[string]string{driver.LabelRole: "web"})
	if len(after) != 2 {
		t.Errorf("%d instances after restart, want 2", len(after))
	}
	for _, id := range after {
		for _, old := range before {
			if id == old {
				t.Errorf("instance %s survived the restart", id)
			}
		}
	}
	if _, body := h.get("us.localhost", "/release"); body != rel.ID {
		t.Errorf("after restart serving %q, want the live release %s", body, rel.ID)
	}
	for _, e := range events {
		if strings.Contains(e, "install") {
			t.Errorf("restart ran a hook: %v", events)
		}
	}

	stop = h.load("us.localhost", 300)
	err = c.Scale(ctx, "us", map[string]int{"web": 4}, nil)
	total, failed = stop()
	if err != nil {
		t.Fatal(err)
	}
	if failed != 0 {
		t.Errorf("scale up under load: %d of %d requests failed", failed, total)
	}
	st, _ := c.Status(ctx)
	if n := len(st.Services[0].Targets); n != 4 {
		t.Errorf("%d routed targets after scale to 4", n)
	}
	stop = h.load("us.localhost", 300)
	err = c.Scale(ctx, "us", map[string]int{"web": 1}, nil)
	total, failed = stop()
	if err != nil {
		t.Fatal(err)
	}
	if failed != 0 {
		t.Errorf("scale down under load: %d of %d requests failed", failed, total)
	}
	if n := len(h.ids(map[string]string{driver.LabelRole: "web"})); n != 1 {
		t.Errorf("%d instances after scale to 1", n)
	}
	// The count is recorded: a restart (and a deploy) keeps it.
	if err := c.Op(ctx, "restart", "us", nil); err != nil {
		t.Fatal(err)
	}
	if n := len(h.ids(map[string]string{driver.LabelRole: "web"})); n != 1 {
		t.Errorf("%d instances after restart of a store scaled to 1", n)
	}
	if _, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c2", Apps: []pipeline.AppDeploy{app}}); err != nil {
		t.Fatal(err)
	}
	if n := len(h.ids(map[string]string{driver.LabelRole: "web"})); n != 1 {
		t.Errorf("%d instances after a deploy asking for 2 of a store scaled to 1", n)
	}
	for _, bad := range []map[string]int{{"web": 0}, {"web": 33}, {"nope": 2}} {
		if err := c.Scale(ctx, "us", bad, nil); err == nil {
			t.Errorf("scale %v accepted", bad)
		}
	}
}

func TestStopStartRemove(t *testing.T) {
	h := start(t, t.TempDir())
	rel, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c1", Apps: []pipeline.AppDeploy{h.app("v1")}})
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(h.dir)
	ctx := context.Background()
	if err := c.Op(ctx, "stop", "us", nil); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+h.s.HTTPAddr()+"/", nil)
	req.Host = "us.localhost"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(body.String(), "maintenance") {
		t.Errorf("stopped store: %d Retry-After=%q %q", resp.StatusCode, resp.Header.Get("Retry-After"), body.String())
	}
	if n := len(h.ids(map[string]string{driver.LabelRole: "web"})); n != 0 {
		t.Errorf("%d instances run after stop", n)
	}
	if err := c.Op(ctx, "start", "us", nil); err != nil {
		t.Fatal(err)
	}
	if code, body := h.get("us.localhost", "/release"); code != 200 || body != rel.ID {
		t.Errorf("after start: %d %q", code, body)
	}
	if err := c.Op(ctx, "remove", "us", nil); err != nil {
		t.Fatal(err)
	}
	if code, _ := h.get("us.localhost", "/"); code != 404 {
		t.Errorf("removed store answers %d", code)
	}
	if n := len(h.ids(nil)); n != 0 {
		t.Errorf("%d instances after remove", n)
	}
	if rs, err := c.Releases(ctx, "us"); err != nil || len(rs) != 1 {
		t.Errorf("history after remove: %v %v", rs, err)
	}
	if err := c.Op(ctx, "restart", "us", nil); err == nil {
		t.Errorf("restart of a removed store succeeded")
	}
	if err := c.Op(ctx, "stop", "eu", nil); err == nil || !strings.Contains(err.Error(), "no live release") {
		t.Errorf("stop of a store never deployed: %v", err)
	}
}

func TestRunAndPS(t *testing.T) {
	h := start(t, t.TempDir())
	secret := "sk_live_run_canary_99"
	if _, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c1", Apps: []pipeline.AppDeploy{h.app("v1")},
		Env: map[string]string{"STRIPE_KEY": secret, "GREETING": "hello"}, Secrets: []string{"STRIPE_KEY"}}); err != nil {
		t.Fatal(err)
	}
	c := NewClient(h.dir)
	ctx := context.Background()
	var out, errb bytes.Buffer
	code, err := c.Run(ctx, "us", RunRequest{Cmd: []string{"./testapp", "env", "GREETING"}}, &out, &errb)
	if err != nil || code != 0 || strings.TrimSpace(out.String()) != "hello" {
		t.Errorf("run env: %d %v %q %q", code, err, out.String(), errb.String())
	}
	out.Reset()
	code, err = c.Run(ctx, "us", RunRequest{Cmd: []string{"./testapp", "env", "STRIPE_KEY"}}, &out, &errb)
	if err != nil || code != 0 || strings.Contains(out.String(), secret) || !strings.Contains(out.String(), "[REDACTED]") {
		t.Errorf("run printing a secret: %d %v %q", code, err, out.String())
	}
	code, err = c.Run(ctx, "us", RunRequest{Cmd: []string{"./testapp", "exit", "7"}}, &out, &errb)
	if err != nil || code != 7 {
		t.Errorf("exit code: %d %v", code, err)
	}
	// /data is the store's.
	if code, err := c.Run(ctx, "us", RunRequest{Cmd: []string{"./testapp", "write", "f", "from-run"}}, nil, nil); err != nil || code != 0 {
		t.Fatalf("run write: %d %v", code, err)
	}
	if _, body := h.get("us.localhost", "/file?name=f"); body != "from-run" {
		t.Errorf("the app reads %q from /data, want what run wrote", body)
	}
	if _, err := c.Run(ctx, "us", RunRequest{App: "nope", Cmd: []string{"true"}}, nil, nil); err == nil {
		t.Errorf("run in an unknown app succeeded")
	}

	ps, err := c.PS(ctx, "us")
	if err != nil || len(ps) != 1 {
		t.Fatalf("ps: %v %+v", err, ps)
	}
	p := ps[0]
	if p.State != "serving" || p.Address == "" || p.App != "web" || p.Started.IsZero() {
		t.Errorf("ps: %+v", p)
	}
	if runtime.GOOS == "linux" && p.MemoryBytes <= 0 {
		t.Errorf("ps reports no memory: %+v", p)
	}
}

// After serve restarts, restart, scale and run still work: the live
// release's env comes back from the sealed instance specs.
func TestOpsAfterServeRestart(t *testing.T) {
	dir := t.TempDir()
	h := start(t, dir)
	rel, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c1", Apps: []pipeline.AppDeploy{h.app("v1")},
		Env: map[string]string{"GREETING": "hi", "STRIPE_KEY": "sk_live_after_restart_1"}, Secrets: []string{"STRIPE_KEY"}})
	if err != nil {
		t.Fatal(err)
	}
	h.s.o.StopOnExit = false
	h.stop()
	h2 := start(t, dir)
	c := NewClient(dir)
	ctx := context.Background()
	var out bytes.Buffer
	if code, err := c.Run(ctx, "us", RunRequest{Cmd: []string{"./testapp", "env", "GREETING"}}, &out, nil); err != nil || code != 0 || strings.TrimSpace(out.String()) != "hi" {
		t.Fatalf("run after a serve restart: %d %v %q", code, err, out.String())
	}
	out.Reset()
	c.Run(ctx, "us", RunRequest{Cmd: []string{"./testapp", "env", "STRIPE_KEY"}}, &out, nil)
	if !strings.Contains(out.String(), "[REDACTED]") {
		t.Errorf("secret after a serve restart: %q", out.String())
	}
	if err := c.Op(ctx, "restart", "us", nil); err != nil {
		t.Fatalf("restart after a serve restart: %v", err)
	}
	if err := c.Scale(ctx, "us", map[string]int{"web": 2}, nil); err != nil {
		t.Fatalf("scale after a serve restart: %v", err)
	}
	if code, body := h2.get("us.localhost", "/release"); code != 200 || body != rel.ID {
		t.Errorf("after restart and scale: %d %q", code, body)
	}
	if code, body := h2.get("us.localhost", "/env?k=GREETING"); code != 200 || body != "hi" {
		t.Errorf("restarted instances lost the env: %d %q", code, body)
	}
}
