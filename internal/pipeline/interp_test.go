package pipeline

import (
	"errors"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/driver"
)

type capsDriver struct {
	driver.Driver
	caps driver.Capabilities
}

func (c capsDriver) Capabilities() driver.Capabilities { return c.caps }

func TestCheckInterpreters(t *testing.T) {
	req := DeployRequest{Store: "us", Apps: []AppDeploy{
		{App: "web", Base: "scratch", MissingInterpreter: "node", ConfigFile: "alokai.config.json"},
		{App: "api"},
	}}
	d := &Deployer{Driver: capsDriver{caps: driver.Capabilities{Name: "docker", Isolation: "container"}}}
	err := d.checkInterpreters(req)
	if !errors.Is(err, ErrNoInterpreter) || !strings.Contains(err.Error(), "us/web") ||
		!strings.Contains(err.Error(), "image.base in alokai.config.json (or SLIPWAY_IMAGE_BASE in the environment) to a Node.js image") {
		t.Fatalf("docker: %v", err)
	}
	d.Driver = capsDriver{caps: driver.Capabilities{Name: "process", Isolation: "none"}}
	if err := d.checkInterpreters(req); err != nil {
		t.Errorf("the process runtime falls back to the host's node: %v", err)
	}
}

func TestHealthCheckDefault(t *testing.T) {
	hc := healthCheck(config.Health{Path: "/", Default: true})
	if hc.MaxStatus != 500 || hc.Path != "/" {
		t.Errorf("default: %+v", hc)
	}
	if hc := healthCheck(config.Health{Path: "/healthz"}); hc.MaxStatus != 0 {
		t.Errorf("configured: %+v", hc)
	}
}
