package logpipe

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/redact"
)

func TestSecretValuesSplitsMultiLine(t *testing.T) {
	got := SecretValues([]byte(EncodeSecrets([]string{"secret-one", "line-one\nline-two"})))
	want := []string{"secret-one", "line-one\nline-two", "line-one", "line-two"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("SecretValues = %q, want %q", got, want)
	}
}

// Every line is stamped and redacted; a line longer than maxLine is split,
// and a last line without a newline is kept.
func TestPipe(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	long := strings.Repeat("x", maxLine+10)
	in := "key=sk_abc ok\n" + long + "\ntail sk_abc"
	var out bytes.Buffer
	Pipe(strings.NewReader(in), &out, redact.New("sk_abc"), func() time.Time { return now })
	stamp := now.Format(StampLayout) + " "
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4", len(lines))
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, stamp) {
			t.Errorf("line %.40q... has no stamp", l)
		}
	}
	if lines[0] != stamp+"key="+redact.Mask+" ok" || lines[3] != stamp+"tail "+redact.Mask {
		t.Errorf("lines %q / %q", lines[0], lines[3])
	}
	if got := len(lines[1]) + len(lines[2]) - 2*len(stamp); got != len(long) {
		t.Errorf("the long line kept %d bytes, want %d", got, len(long))
	}
}

// The helper's cost is what its init runs before it: this package and
// what it imports must stay small standard packages (see the package doc).
func TestImportsStaySmall(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]bool{
		"github.com/slipway-dev/slipway/internal/logpipe": true,
		"github.com/slipway-dev/slipway/internal/redact":  true,
	}
	for _, p := range strings.Fields(string(out)) {
		if !allowed[p] {
			t.Errorf("logpipe depends on %s: its init (and the helper's start) would wait for it", p)
		}
	}
	out, err = exec.Command(gobin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, heavy := range []string{"fmt", "reflect", "net", "regexp", "encoding/json"} {
		for _, p := range strings.Fields(string(out)) {
			if p == heavy {
				t.Errorf("logpipe depends on %s", heavy)
			}
		}
	}
}
