package process

import (
	"bytes"
	"context"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/driver/testapp"
	"github.com/slipway-dev/slipway/internal/redact"
)

// A secret the app prints is [REDACTED] in its log and in no file of the
// driver's directory; every stored line has the time it was written.
func TestLogsRedactedBeforeDisk(t *testing.T) {
	store := newLayoutStore(t)
	img := appImage(t, store, nil)
	dir := t.TempDir()
	d := newDriver(t, dir)
	secret := "sk_live_canary_logpipe_77"
	before := time.Now().Add(-time.Second)
	inst := startApp(t, d, driver.Spec{Image: img, Env: map[string]string{"KEY": secret}, Secrets: []string{secret}})
	httpGet(inst.Addr, "/healthz?leak="+secret)
	var lines []driver.LogLine
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		lines = nil
		if err := d.TimedLogs(context.Background(), inst.ID, time.Time{}, false, func(l driver.LogLine) { lines = append(lines, l) }); err != nil {
			t.Fatal(err)
		}
		if len(lines) > 0 && strings.Contains(lines[len(lines)-1].Text, "leak=") {
			break
		}
	}
	last := lines[len(lines)-1]
	if !strings.Contains(last.Text, "leak="+redact.Mask) || strings.Contains(last.Text, secret) {
		t.Fatalf("last line %q: want the secret redacted", last.Text)
	}
	for _, l := range lines {
		if l.Time.Before(before) || l.Time.After(time.Now()) {
			t.Errorf("line %q stamped %s", l.Text, l.Time)
		}
	}
	var plain bytes.Buffer
	if err := d.Logs(context.Background(), inst.ID, &plain, false); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(plain.String(), "testapp listening") {
		t.Errorf("Logs should give the output without stamps: %q", plain.String())
	}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || fi.Size() > 32<<20 {
			return nil
		}
		if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the secret", p)
		}
		return nil
	})
	// The log keeper is not in the instance's process group: stopping the
	// instance leaves nothing of that group.
	rec, err := d.readRecord(inst.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(context.Background(), inst.ID); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(3 * time.Second); groupExists(rec.PGID); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("process group %d still has members after Stop", rec.PGID)
		}
	}
}

// The log keeper outlives serve as the instances do: after the Driver that
// started an instance is gone (its end of the keeper's socket closed),
// what the instance prints still reaches its log, redacted; a new Driver's
// instances get a keeper of their own.
func TestOutputSurvivesRestart(t *testing.T) {
	store := newLayoutStore(t)
	img := appImage(t, store, nil)
	dir := t.TempDir()
	a := newDriver(t, dir)
	secret := "sk_live_survivor_31"
	inst := startApp(t, a, driver.Spec{Image: img, Secrets: []string{secret}})
	syscall.Close(a.keeper.ctl) // serve exits; the instance and its keeper stay
	a = nil

	b := newDriver(t, dir)
	other := startApp(t, b, driver.Spec{Image: img})
	httpGet(inst.Addr, "/healthz?after-restart="+secret)
	httpGet(other.Addr, "/healthz?other")
	for _, c := range []struct{ id, want string }{{inst.ID, "after-restart=" + redact.Mask}, {other.ID, "other"}} {
		var got string
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !strings.Contains(got, c.want); time.Sleep(50 * time.Millisecond) {
			var buf bytes.Buffer
			if err := b.Logs(context.Background(), c.id, &buf, false); err != nil {
				t.Fatal(err)
			}
			got = buf.String()
		}
		if !strings.Contains(got, c.want) || strings.Contains(got, secret) {
			t.Errorf("log of %s: %q, want %q", c.id, got, c.want)
		}
	}
}

// An app that prints fast never waits on the keeper for long: 200000 lines
// printed at once are all in the log within seconds, in order.
func TestChattyAppIsNotHeldUp(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	base := testapp.Image(t, testapp.Options{GOOS: runtime.GOOS})
	cfg, err := base.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Config
	c.Entrypoint, c.Cmd = []string{"sh", "-c", "seq 1 200000; echo done; exec ./" + path.Base(testapp.Path)}, nil
	img, err := mutate.Config(base, c)
	if err != nil {
		t.Fatal(err)
	}
	store := newLayoutStore(t)
	d := newDriver(t, t.TempDir())
	start := time.Now()
	inst := startApp(t, d, driver.Spec{Image: store.publish(t, img)})
	t.Logf("healthy after %s", time.Since(start))
	var lines []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var buf bytes.Buffer
		if err := d.Logs(context.Background(), inst.ID, &buf, false); err != nil {
			t.Fatal(err)
		}
		if lines = strings.Split(buf.String(), "\n"); len(lines) > 200001 {
			break
		}
	}
	if len(lines) < 200002 || lines[0] != "1" || lines[199999] != "200000" || lines[200000] != "done" {
		t.Fatalf("%d lines in the log (first %q); want 1..200000 then done", len(lines), lines[0])
	}
}
