package process

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/driver"
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
	// The log pipe lives in the instance's process group: stopping the
	// instance ends it too.
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
