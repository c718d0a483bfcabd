//go:build linux

package server

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/driver/docker"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// On the docker runtime a secret an app prints appears in `logs` as
// [REDACTED] and in no file: not under the state dir, not in the engine's
// files of the container (its env in config.v2.json aside).
func TestDockerLogsRedactedBeforeDisk(t *testing.T) {
	if testenv.RequireDocker(t) == "" {
		return
	}
	dir := t.TempDir()
	h := serveWith(t, Options{DataDir: dir, HTTPAddr: "127.0.0.1:0", Driver: "docker", Log: io.Discard, StopOnExit: true})
	s := h.s

	secret := "sk_live_docker_canary_" + time.Now().Format("150405.000")
	if _, err, evs := h.deploy(pipeline.DeployRequest{Commit: "c1", Apps: []pipeline.AppDeploy{h.app("v1")},
		Env: map[string]string{"STRIPE_KEY": secret}, Secrets: []string{"STRIPE_KEY"}}); err != nil {
		t.Fatalf("deploy on docker: %v\n%v", err, evs)
	}
	if code, _ := h.get("us.localhost", "/healthz?leak="+secret); code != 200 {
		t.Fatalf("GET: %d", code)
	}
	var text string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var b strings.Builder
		NewClient(dir).Logs(context.Background(), "us", LogsQuery{}, func(e LogEntry) { b.WriteString(e.Text + "\n") })
		text = b.String()
		if strings.Contains(text, "leak=[REDACTED]") || time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains(text, "leak=[REDACTED]") || strings.Contains(text, secret) {
		t.Fatalf("logs: want the request line with the secret redacted:\n%s", text)
	}
	noFileHolds(t, dir, secret)

	insts, err := s.Driver.List(context.Background(), map[string]string{driver.LabelStore: "us", driver.LabelRole: "web"})
	if err != nil || len(insts) == 0 {
		t.Fatalf("instances: %v %v", insts, err)
	}
	cli := s.Driver.(*docker.Driver).Client()
	info, err := cli.Info(context.Background(), client.InfoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range insts {
		cdir := filepath.Join(info.Info.DockerRootDir, "containers", in.ID)
		if _, err := os.Stat(cdir); err != nil {
			t.Fatalf("the engine's directory of %s: %v (a local engine, as root, is needed)", in.Name, err)
		}
		filepath.Walk(cdir, func(p string, fi os.FileInfo, err error) error {
			if err != nil || fi.IsDir() || fi.Name() == "config.v2.json" {
				return nil
			}
			if b, _ := os.ReadFile(p); strings.Contains(string(b), secret) {
				t.Errorf("%s holds the secret", p)
			}
			return nil
		})
	}
}
