package pipeline

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/config"
)

func TestPlanProcesses(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Procfile"), []byte("web: node server.js\nworker: node w.js\nrelease: node migrate.js\nmailer: node m.js\n"), 0o644)
	app := &config.App{ID: "web", Path: "apps/web", Processes: map[string]*config.ProcessSpec{
		"worker": {Command: "node w2.js", Instances: 2}, "web": {Instances: 3},
	}}
	p, err := planProcesses(dir, app)
	if err != nil {
		t.Fatal(err)
	}
	// The config wins for a name both define; web's empty command keeps the entrypoint.
	if p.web != "" || p.webN != 3 || p.release != "node migrate.js" || len(p.others) != 2 ||
		p.others[0].Name != "mailer" || p.others[1].Command != "node w2.js" || p.others[1].Instances != 2 {
		t.Errorf("plan: %+v", p)
	}
	os.WriteFile(filepath.Join(dir, "Procfile"), []byte("web: a\nthis is not a process line\n"), 0o644)
	if _, err := planProcesses(dir, &config.App{ID: "web", Path: "apps/web"}); err == nil || !strings.Contains(err.Error(), "apps/web: Procfile:2") {
		t.Errorf("bad Procfile: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "Procfile"), []byte("web: a\nweb: b\n"), 0o644)
	if _, err := planProcesses(dir, &config.App{ID: "web", Path: "apps/web"}); err == nil || !strings.Contains(err.Error(), "already defined on line 1") {
		t.Errorf("duplicate: %v", err)
	}
}

func TestProcfileReleaseIsTheInstallHook(t *testing.T) {
	cfg := &config.Config{Project: "p", Stores: map[string]*config.Store{"us": {ID: "us", ProjectName: "p", Framework: "node"}},
		Apps: []*config.App{{ID: "web", Framework: "node", Port: 3000}}}
	ims := []BuiltImage{{Store: "us", App: "web", Release: "node migrate.js", Processes: []ProcessImage{{Name: "worker", Command: "node w.js", Instances: 2, DriverRef: "x@sha256:1"}}}}
	req, err := NewDeployRequest(cfg, "us", ims, RequestOptions{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	if req.Hooks.Install.Command != "node migrate.js" || len(req.Apps[0].Processes) != 1 || req.Apps[0].Processes[0].Instances != 2 {
		t.Errorf("request: %+v", req)
	}
	req, _ = NewDeployRequest(cfg, "us", ims, RequestOptions{Hooks: Hooks{Install: Hook{Command: "from deploy.yml"}}, Getenv: func(string) string { return "" }})
	if req.Hooks.Install.Command != "from deploy.yml" {
		t.Errorf("deploy.yml's install hook must win: %q", req.Hooks.Install.Command)
	}
}
