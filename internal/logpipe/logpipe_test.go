package logpipe

import (
	"bytes"
	"os"
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

// The helper is this test binary started with Env=1: it runs from init,
// before the test framework, redacts what it reads and appends to fd 3.
func TestHelperProcess(t *testing.T) {
	logf, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	sr, sw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = []string{Env + "=1"}
	cmd.Stdin = strings.NewReader("hello sk_live_helper_9\nbye\n")
	cmd.ExtraFiles = []*os.File{logf, sr}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sr.Close()
	sw.WriteString(EncodeSecrets([]string{"sk_live_helper_9"}))
	sw.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v: %s", err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("the helper printed %q: it should exit in init, before the test framework runs", stderr.String())
	}
	b, err := os.ReadFile(logf.Name())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], " hello "+redact.Mask) || !strings.HasSuffix(lines[1], " bye") {
		t.Errorf("log %q", b)
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
