package swarm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/driver"
)

func TestServiceName(t *testing.T) {
	if got := serviceName("acme-us-web-r1-1"); got != "acme-us-web-r1-1" {
		t.Errorf("a valid name changed: %q", got)
	}
	long := strings.Repeat("store", 20) + "-web-1"
	a, b := serviceName(long), serviceName(long+"x")
	if len(a) > 63 || len(b) > 63 || a == b {
		t.Errorf("long names: %q %q: want ≤ 63 characters and distinct", a, b)
	}
	if got := serviceName("a_b.c d"); strings.ContainsAny(got, "_. ") || len(got) > 63 {
		t.Errorf("serviceName(a_b.c d) = %q", got)
	}
}

// TestEnvFileRoundTrip sources the env file with the host's /bin/sh, as the
// task's wrapper does, and checks every value arrives byte for byte.
func TestEnvFileRoundTrip(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	env := map[string]string{
		"PLAIN":  "value",
		"TRICKY": `it's "quoted" $HOME ; & | \ ` + "tab\tnew\nline",
		"EMPTY":  "",
	}
	data, err := envFile(env)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for k, want := range env {
		out, err := exec.Command("/bin/sh", "-c", `. "$1" && printf %s "$(printenv `+k+`)"`, "sh", f).Output()
		if err != nil {
			t.Fatalf("sourcing: %v", err)
		}
		if string(out) != want {
			t.Errorf("%s = %q, want %q", k, out, want)
		}
	}
	if _, err := envFile(map[string]string{"BAD-NAME": "x"}); err == nil || !strings.Contains(err.Error(), "BAD-NAME") {
		t.Errorf("envFile with a name sh cannot export: %v, want an error naming it", err)
	}
	if d, _ := envFile(nil); len(d) == 0 {
		t.Errorf("an empty env gives an empty file: Swarm refuses empty secrets")
	}
}

func TestParseRefRejectsLayout(t *testing.T) {
	_, err := parseRef(imageOf("oci-layout:/x@sha256:" + strings.Repeat("a", 64)))
	if err == nil || !strings.Contains(err.Error(), "registry") {
		t.Errorf("parseRef(oci-layout) = %v, want an error saying a registry is needed", err)
	}
}

func imageOf(ref string) driver.Image { return driver.Image{Ref: ref} }
