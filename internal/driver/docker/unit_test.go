package docker

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/testenv"
)

func TestParseImageRef(t *testing.T) {
	h := "sha256:" + strings.Repeat("ab", 32)
	r, err := parseImageRef("127.0.0.1:5000/acme/web@" + h)
	if err != nil || r.layoutDir != "" || r.digest.String() != h || r.ref.RegistryStr() != "127.0.0.1:5000" {
		t.Errorf("registry ref: %+v %v", r, err)
	}
	r, err = parseImageRef("oci-layout:/var/lib/slip@way/store@" + h)
	if err != nil || r.layoutDir != "/var/lib/slip@way/store" || r.digest.String() != h {
		t.Errorf("layout ref: %+v %v", r, err)
	}
	for _, bad := range []string{"127.0.0.1:5000/acme/web:latest", "oci-layout:/x", "oci-layout:@" + h, "oci-layout:/x@sha256:12", ""} {
		if _, err := parseImageRef(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestOwnedTag(t *testing.T) {
	h := "sha256:" + strings.Repeat("0f", 32)
	tag := OwnedTag(OwnedRepo, h)
	if tag != "slipway.local/images:sha256-"+strings.Repeat("0f", 32) {
		t.Errorf("OwnedTag: %s", tag)
	}
	if d, ok := ownedDigest(OwnedRepo, tag); !ok || d != h {
		t.Errorf("ownedDigest(%s) = %s %v", tag, d, ok)
	}
	for _, other := range []string{"slipway.local/images:latest", "busybox:latest", "<none>:<none>", "slipway.local/images-other:sha256-" + strings.Repeat("0f", 32)} {
		if _, ok := ownedDigest(OwnedRepo, other); ok {
			t.Errorf("ownedDigest(%s) ok", other)
		}
	}
}

func TestDataVolumeName(t *testing.T) {
	if n := DataVolumeName("acme-us"); n != "slipway-data-acme-us" {
		t.Errorf("plain key: %s", n)
	}
	a, b := DataVolumeName("acme/us"), DataVolumeName("acme:us")
	if a == b || !validName.MatchString(a) || !strings.HasPrefix(a, "slipway-data-acme-us-") {
		t.Errorf("sanitised keys: %s %s", a, b)
	}
}

func TestKeepDigests(t *testing.T) {
	h := []string{"d9", "d8", "d7", "d6", "d5", "d4", "d3"}
	for _, tc := range []struct {
		name    string
		current int
		n       int
		want    string
	}{
		{"default five, current newest", 0, 0, "d9,d8,d7,d6,d5"},
		{"n=1 still keeps previous", 0, 1, "d9,d8"},
		{"rolled back far", 5, 2, "d4,d3,d9,d8"},
		{"none active", -1, 3, "d9,d8,d7"},
		{"current is the oldest", 6, 1, "d3,d9"},
	} {
		if got := strings.Join(KeepDigests(h, tc.current, tc.n), ","); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
	// Redeploys of the same image count once.
	if got := strings.Join(KeepDigests([]string{"a", "a", "b", "", "c"}, 0, 3), ","); got != "a,b" {
		t.Errorf("duplicates: %s", got)
	}
}

func TestIsRemoteHost(t *testing.T) {
	for host, want := range map[string]bool{
		"unix:///var/run/docker.sock":   false,
		"npipe:////./pipe/docker":       false,
		"tcp://127.0.0.1:2375":          false,
		"tcp://localhost:2375":          false,
		"tcp://[::1]:2375":              false,
		"tcp://10.0.0.5:2376":           true,
		"tcp://docker.example.com:2376": true,
		"ssh://deploy@build-1":          true,
		"ssh://deploy@127.0.0.1":        false,
	} {
		if got := IsRemoteHost(host); got != want {
			t.Errorf("IsRemoteHost(%s) = %v", host, got)
		}
	}
}

func TestNewBadOptions(t *testing.T) {
	ctx := context.Background()
	if _, err := New(ctx, WithHost("unix:///nonexistent.sock"), WithNetworkMode("overlay")); err == nil {
		t.Error("bad network mode accepted")
	}
	if _, err := New(ctx, WithHost("unix:///nonexistent.sock"), WithPublishIP("lo")); err == nil {
		t.Error("bad publish IP accepted")
	}
	for _, repo := range []string{"slipway.local/images:tag", "Bad Repo", ""} {
		if _, err := New(ctx, WithHost("unix:///nonexistent.sock"), WithImageRepo(repo)); err == nil {
			t.Errorf("image repo %q accepted", repo)
		}
	}
	_, err := New(ctx, WithHost("unix:///nonexistent.sock"))
	if err == nil || !strings.Contains(err.Error(), "pinging engine") {
		t.Errorf("no engine: %v", err)
	}
}

// TestSSHHost goes through the ssh:// connection helper with an "ssh" on
// PATH that, instead of connecting anywhere, runs the remote command's
// `docker system dial-stdio` against the local engine.
func TestSSHHost(t *testing.T) {
	local := testenv.RequireDocker(t)
	if local == "" {
		return
	}
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("no docker CLI for dial-stdio")
	}
	bin := t.TempDir()
	script := "#!/bin/sh\nexec env DOCKER_HOST='" + local + "' '" + docker + "' system dial-stdio\n"
	if err := os.WriteFile(filepath.Join(bin, "ssh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	d, err := New(context.Background(), WithHost("ssh://deploy@build-1.invalid"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if caps := d.Capabilities(); !caps.Remote || caps.Name != "docker" || !caps.Prune || !caps.Wait || !caps.Restart || caps.Isolation != "container" {
		t.Errorf("Capabilities: %+v", caps)
	}
	if _, err := d.List(context.Background(), map[string]string{driver.LabelProject: "ssh-test-none"}); err != nil {
		t.Errorf("List over ssh: %v", err)
	}
}
