package export

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/slipway-dev/slipway/internal/testenv"
)

func sample() Store {
	img := "127.0.0.1:5000/shop/web@sha256:" + strings.Repeat("a", 64)
	return Store{
		Project: "shop", Store: "us", Region: "us-east-1", Release: "us-v3", Commit: "0123456789abcdef",
		Secrets: []string{"API_KEY"}, SecretsFile: "us.secrets.env", DataVolume: "slipway-data-shop-us",
		VolumeDriver: "local", VolumeOptions: map[string]string{"type": "nfs", "o": "addr=10.0.0.5,rw", "device": ":/export/us"},
		Apps: []App{
			{Name: "web", Image: img, Port: 3000, Env: map[string]string{"PORT": "3000", "PRICE": "US$ 5", "SLIPWAY_DATA_DIR": "/data"}},
			{Name: "api", Image: img, Port: 3000, Env: map[string]string{"PORT": "3000"}},
		},
	}
}

// TestComposeFile checks what the file says, then has docker-compose read it.
func TestComposeFile(t *testing.T) {
	b, err := Compose(sample())
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]struct {
			Image       string
			Environment map[string]string
			EnvFile     []string `yaml:"env_file"`
			Ports       []string
			Volumes     []string
		}
		Volumes map[string]struct{ Name string }
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	web, api := f.Services["web"], f.Services["api"]
	if !strings.Contains(web.Image, "@sha256:") || web.Environment["PRICE"] != "US$$ 5" {
		t.Errorf("web: %+v: want the digest and $ escaped for compose", web)
	}
	if len(web.EnvFile) != 1 || web.EnvFile[0] != "us.secrets.env" || strings.Contains(string(b), "API_KEY=") {
		t.Errorf("web env_file %v; the file must name the secret only as a placeholder", web.EnvFile)
	}
	if web.Ports[0] != "3000:3000" || api.Ports[0] != "3001:3000" {
		t.Errorf("ports: web %v api %v: want distinct host ports", web.Ports, api.Ports)
	}
	if web.Volumes[0] != "data:/data" || f.Volumes["data"].Name != "slipway-data-shop-us" {
		t.Errorf("volumes: %v %+v", web.Volumes, f.Volumes)
	}
	validate(t, "docker-compose.yml", b)
}

func TestStackFile(t *testing.T) {
	b, err := Stack(sample())
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"node.labels.region == us-east-1", "mode: host", "driver_opts:", "replicas: 1", "condition: any"} {
		if !strings.Contains(s, want) {
			t.Errorf("the stack file lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "restart: unless-stopped") {
		t.Errorf("stack files restart through deploy.restart_policy, not restart:")
	}
	validate(t, "stack.yml", b)
}

func TestRefusesTagsAndEmpty(t *testing.T) {
	s := sample()
	s.Apps[0].Image = "127.0.0.1:5000/shop/web:latest"
	if _, err := Compose(s); err == nil || !strings.Contains(err.Error(), "digest") {
		t.Errorf("a tag reference: %v, want an error", err)
	}
	if _, err := Compose(Store{Store: "us"}); err == nil {
		t.Errorf("no apps: want an error")
	}
}

// validate runs `docker-compose -f FILE config` beside a placeholder secrets file.
func validate(t *testing.T, name string, b []byte) {
	t.Helper()
	if testenv.RequireCompose(t) == "" {
		return
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "us.secrets.env"), SecretsFile("us", []string{"API_KEY"}), 0o600); err != nil {
		t.Fatal(err)
	}
	out := testenv.Compose(t, dir, "-f", name, "config")
	if !strings.Contains(out, "sha256:") {
		t.Errorf("docker-compose config printed no image digest:\n%s", out)
	}
}
