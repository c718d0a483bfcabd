package cli

import (
	"strings"
	"testing"
)

func TestSystemdUnits(t *testing.T) {
	code, out, stderr := run(t, "systemd", "--state-dir", "/var/lib/slip way", "--http", "0.0.0.0:80", "--socket", "--bin", "/usr/local/bin/slipway", "--user", "slipway")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		`ExecStart=/usr/local/bin/slipway serve --state-dir "/var/lib/slip way" --http 0.0.0.0:80 --driver process`,
		"KillMode=process", "Type=notify", "NotifyAccess=all", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=always",
		"Delegate=yes", "User=slipway", "WantedBy=multi-user.target", "Requires=slipway.socket",
		"ListenStream=0.0.0.0:80", "ListenStream=/var/lib/slip way/slipway.sock", "SocketMode=0600", "SocketUser=slipway",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if code, _, stderr := run(t, "systemd"); code != ExitUsage || !strings.Contains(stderr, "--state-dir") {
		t.Errorf("without --state-dir: %d %s", code, stderr)
	}
}
