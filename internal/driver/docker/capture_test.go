package docker

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// With a log dir, a secret the app prints reaches no file: not the driver's
// log (redacted before it is written) and not the engine's (it stores none),
// through an engine-driven restart and a restart of the driver itself, while
// `logs -f` keeps following.
func TestOutputRedactedBeforeDisk(t *testing.T) {
	logDir := t.TempDir()
	e := newDriver(t, WithLogDir(logDir))
	if e == nil {
		return
	}
	ctx := context.Background()
	canary := "canary-" + randHex(8)
	spec := e.spec(e.push("app", "capture", nil), "r1")
	spec.Env["CANARY"] = canary
	spec.Secrets = []string{canary, spec.Env["SECRET_TOKEN"]}
	inst := e.start(spec)

	var mu sync.Mutex
	var followed []string
	fctx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	followDone := make(chan error, 1)
	go func() {
		followDone <- e.d.TimedLogs(fctx, inst.ID, time.Time{}, true, func(l driver.LogLine) {
			mu.Lock()
			followed = append(followed, l.Text)
			mu.Unlock()
		})
	}()

	get(t, inst.Addr, "/healthz?one="+canary)
	waitLine(t, e.d, inst.ID, "one=[REDACTED]")

	// The engine restarts the crashed container; it is attached again.
	get(t, inst.Addr, "/crash")
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, _ := get(t, inst.Addr, "/healthz?two="+canary)
		if code == 200 && hasLine(t, e.d, inst.ID, "two=[REDACTED]") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no redacted line after the engine's restart: %q", logText(t, e.d, inst.ID))
		}
		time.Sleep(200 * time.Millisecond)
	}
	waitFor(t, "logs -f to see the line after the restart", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(strings.Join(followed, "\n"), "two=[REDACTED]")
	})
	stopFollow()
	if err := <-followDone; err != nil {
		t.Errorf("following: %v", err)
	}

	// A new driver (Slipway restarted) attaches to the running container.
	d2, err := New(ctx, WithHost(testenv.DockerHost()), WithNetworkMode(testenv.DockerNetwork()),
		WithImageRepo("slipway.local/"+e.project), WithLogDir(logDir))
	if err != nil {
		t.Fatal(err)
	}
	e.d.Close()
	defer d2.Close()
	get(t, inst.Addr, "/healthz?three="+canary)
	waitLine(t, d2, inst.ID, "three=[REDACTED]")
	all := logText(t, d2, inst.ID)
	for _, want := range []string{"one=[REDACTED]", "two=[REDACTED]", "testapp crashing with status 3"} {
		if !strings.Contains(all, want) {
			t.Errorf("log lacks %q after the driver's restart:\n%s", want, all)
		}
	}
	if strings.Contains(all, canary) || strings.Contains(all, "s3cr3t value") {
		t.Errorf("log shows a secret:\n%s", all)
	}

	assertNoFileHas(t, logDir, canary)
	res, err := d2.Client().ContainerInspect(ctx, inst.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Container.LogPath != "" || res.Container.HostConfig.LogConfig.Type != LogDriverNone {
		t.Errorf("engine log driver %q, log path %q: want none", res.Container.HostConfig.LogConfig.Type, res.Container.LogPath)
	}
	assertNoFileHas(t, engineContainerDir(t, d2, inst.ID), canary)

	// Stop removes the log with the container.
	if err := d2.Stop(ctx, inst.ID); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(logDir); len(ents) != 0 {
		t.Errorf("log dir after Stop: %v", ents)
	}
}

// The check above can fail: without a log dir the engine's json-file log
// holds the canary in clear.
func TestEngineLogHoldsOutputWithoutLogDir(t *testing.T) {
	e := newDriver(t)
	if e == nil {
		return
	}
	canary := "canary-" + randHex(8)
	inst := e.start(e.spec(e.push("app", "nocapture", nil), "r1"))
	get(t, inst.Addr, "/healthz?x="+canary)
	waitLine(t, e.d, inst.ID, "x="+canary)
	dir := engineContainerDir(t, e.d, inst.ID)
	if !fileHas(t, dir, canary) {
		t.Fatalf("the engine's files under %s lack the canary: the check proves nothing", dir)
	}
}

// engineContainerDir is the engine's directory of a container (its logs,
// its config), which must be readable here (a local engine, as root).
func engineContainerDir(t *testing.T, d *Driver, id string) string {
	t.Helper()
	info, err := d.Client().Info(context.Background(), client.InfoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(info.Info.DockerRootDir, "containers", id)
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("SLIPWAY_REQUIRE_DOCKER") == "1" {
			t.Fatalf("the engine's container directory: %v (CI runs a local engine as root)", err)
		}
		t.Skipf("the engine's container directory is not readable here: %v", err)
	}
	return dir
}

// assertNoFileHas fails for every file under dir that contains s. The
// engine's config.v2.json is left out: it holds the container's env, secrets
// included, by the engine's design (not output).
func assertNoFileHas(t *testing.T, dir, s string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() || de.Name() == "config.v2.json" || !de.Type().IsRegular() {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(s)) {
			t.Errorf("%s contains the secret", p)
		}
		return nil
	})
}

func fileHas(t *testing.T, dir, s string) bool {
	found := false
	filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err == nil && de.Type().IsRegular() && de.Name() != "config.v2.json" {
			if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(s)) {
				found = true
			}
		}
		return nil
	})
	return found
}

func logText(t *testing.T, d *Driver, id string) string {
	t.Helper()
	var b strings.Builder
	if err := d.Logs(context.Background(), id, &b, false); err != nil {
		t.Fatalf("Logs: %v", err)
	}
	return b.String()
}

func hasLine(t *testing.T, d *Driver, id, s string) bool {
	return strings.Contains(logText(t, d, id), s)
}

func waitLine(t *testing.T, d *Driver, id, s string) {
	t.Helper()
	waitFor(t, "a log line with "+s, func() bool { return hasLine(t, d, id, s) })
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !ok(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
