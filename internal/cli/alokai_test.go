package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestAlokaiFlagAliases: Alokai's deploy flags and CLI_CLOUD_* variables set
// the registry and its credentials; a password on argv works with a warning.
func TestAlokaiFlagAliases(t *testing.T) {
	parse := func(args ...string) (*registryOptions, *bytes.Buffer) {
		t.Helper()
		var warn bytes.Buffer
		r := &registryOptions{}
		cmd := &cobra.Command{Use: "deploy"}
		cmd.SetErr(&warn)
		r.bind(cmd)
		r.bindAlokai(cmd)
		if err := cmd.ParseFlags(args); err != nil {
			t.Fatal(err)
		}
		return r, &warn
	}
	t.Setenv("SLIPWAY_REGISTRY_PASSWORD", "")
	t.Setenv("CLI_CLOUD_USERNAME", "")
	t.Setenv("CLI_CLOUD_PASSWORD", "")
	r, warn := parse("--docker-registry-url", "https://registry.example.com/acme/", "--cloud-username", "bob", "--cloud-password", "hunter22")
	if got := r.registryHost(nil); got != "registry.example.com/acme" {
		t.Errorf("registry %q", got)
	}
	user, pw, err := r.credentials(strings.NewReader(""))
	if err != nil || user != "bob" || pw != "hunter22" {
		t.Errorf("credentials %q %q %v", user, pw, err)
	}
	if !strings.Contains(warn.String(), "argv") || strings.Contains(warn.String(), "hunter22") {
		t.Errorf("warning: %q", warn)
	}
	t.Setenv("CLI_CLOUD_USERNAME", "ci-user")
	t.Setenv("CLI_CLOUD_PASSWORD", "from-env")
	r, warn = parse("--docker-registry-url", "registry.example.com")
	user, pw, err = r.credentials(strings.NewReader(""))
	if err != nil || user != "ci-user" || pw != "from-env" || warn.Len() != 0 {
		t.Errorf("env credentials %q %q %v %q", user, pw, err, warn)
	}
	t.Setenv("CLI_CLOUD_USERNAME", "")
	if _, _, err := r.credentials(strings.NewReader("")); err == nil {
		t.Error("a password without a user name was accepted")
	}
}
