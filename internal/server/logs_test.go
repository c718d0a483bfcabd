package server

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/pipeline"
)

// A canary secret printed by an app and by a hook appears in `logs` as
// [REDACTED] and in no file under the state dir; lines of instances, hooks
// and the deploy job come interleaved by time, each naming its source.
func TestLogsRedactAndInterleave(t *testing.T) {
	h := start(t, t.TempDir())
	secret := "sk_live_logs_canary_31337"
	app := h.app("v1")
	app.Instances = 2
	if _, err, evs := h.deploy(pipeline.DeployRequest{Commit: "c1", Apps: []pipeline.AppDeploy{app},
		Env: map[string]string{"STRIPE_KEY": secret}, Secrets: []string{"STRIPE_KEY"},
		Hooks: pipeline.Hooks{Install: pipeline.Hook{Command: "./testapp env STRIPE_KEY"}}}); err != nil {
		t.Fatalf("%v\n%v", err, evs)
	}
	for range 4 {
		h.get("us.localhost", "/healthz?leak="+secret)
	}
	c := NewClient(h.dir)
	ctx := context.Background()
	var got []LogEntry
	deadline := time.Now().Add(5 * time.Second)
	for {
		got = nil
		if err := c.Logs(ctx, "us", LogsQuery{}, func(e LogEntry) { got = append(got, e) }); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range got {
			if strings.Contains(e.Text, "leak=") {
				n++
			}
		}
		if n == 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	sources := map[string]int{}
	var hookLine, appLine bool
	for i, e := range got {
		if strings.Contains(e.Text, secret) {
			t.Errorf("secret in logs: %+v", e)
		}
		if i > 0 && e.Time.Before(got[i-1].Time) {
			t.Errorf("line %d (%s) is older than the one before (%s)", i, e.Time, got[i-1].Time)
		}
		sources[e.Source]++
		hookLine = hookLine || (e.Source == "deploy:install" && e.Text == "[REDACTED]")
		appLine = appLine || (strings.HasPrefix(e.Source, "shop-us-web-") && strings.Contains(e.Text, "leak=[REDACTED]"))
	}
	if !hookLine || !appLine {
		t.Errorf("want the hook's and an instance's line with [REDACTED]; got %+v", got)
	}
	instances := 0
	for src := range sources {
		if strings.HasPrefix(src, "shop-us-web-") {
			instances++
		}
	}
	if instances != 2 || sources["deploy"] == 0 {
		t.Errorf("sources %v: want both instances and the deploy job", sources)
	}
	// --tail and --since.
	var tail []LogEntry
	c.Logs(ctx, "us", LogsQuery{Tail: 3}, func(e LogEntry) { tail = append(tail, e) })
	if len(tail) != 3 || tail[2] != got[len(got)-1] {
		t.Errorf("tail 3: %+v", tail)
	}
	var none []LogEntry
	time.Sleep(20 * time.Millisecond)
	// The health monitor's checks print lines too; a microsecond leaves no room for one.
	c.Logs(ctx, "us", LogsQuery{Since: time.Microsecond}, func(e LogEntry) { none = append(none, e) })
	if len(none) != 0 {
		t.Errorf("since 1µs: %d lines", len(none))
	}
	if err := c.Logs(ctx, "us", LogsQuery{Tail: -1}, nil); err == nil {
		t.Errorf("tail -1 accepted")
	}

	// -f: a new line arrives while following.
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	seen := make(chan struct{})
	go func() {
		time.Sleep(300 * time.Millisecond)
		h.get("us.localhost", "/healthz?follow-marker")
	}()
	go c.Logs(fctx, "us", LogsQuery{Follow: true, Tail: 1}, func(e LogEntry) {
		if strings.Contains(e.Text, "follow-marker") {
			close(seen)
			cancel()
		}
	})
	select {
	case <-seen:
	case <-fctx.Done():
		t.Errorf("logs -f did not show a new line")
	}

	// No file under the state dir holds the secret.
	filepath.Walk(h.dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || !fi.Mode().IsRegular() || fi.Size() > 64<<20 {
			return nil
		}
		if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the secret", p)
		}
		return nil
	})
}
