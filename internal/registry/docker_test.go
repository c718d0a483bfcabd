package registry

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/image"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// TestDockerRunsPublishedImage is the end-to-end proof: an image built
// without a daemon, published to a real registry, pulled by digest and run
// by a real Docker engine, runs entrypoint.sh before the main process with
// the configured env and working directory.
func TestDockerRunsPublishedImage(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("pulls and runs a container")
	}
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)

	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	// Not executable on purpose: the wrapper runs it with /bin/sh.
	write(image.EntrypointScript, "echo \"entrypoint.sh ran in $(pwd)\"\ntouch /tmp/prepared\n", 0o644)
	write("start.sh", "#!/bin/sh\nif [ -f /tmp/prepared ]; then p=yes; else p=no; fi\necho \"main: prepared=$p pwd=$(pwd) GREETING=$GREETING PORT=$PORT args=$* pid=$$\"\n", 0o755)

	img, err := image.Build(context.Background(), image.Spec{
		Base:        testenv.BusyboxImage(t),
		Dir:         dir,
		WorkDir:     "/srv/app",
		Entrypoint:  []string{"/srv/app/start.sh"},
		Cmd:         []string{"one", "two"},
		Env:         map[string]string{"GREETING": "hello world", "PORT": "3000"},
		ExposedPort: 3000,
		Labels:      image.Labels(image.LabelInfo{Project: "e2e", Store: "de", App: "web", Revision: "abc"}),
		Created:     time.Unix(1700000000, 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	ref := mustRef(t, reg.Addr+"/e2e/web:abc")
	d, err := NewRemote(anonymous).Publish(context.Background(), ref, img)
	if err != nil {
		t.Fatal(err)
	}

	pull := d.String()
	testenv.Docker(t, "pull", "-q", pull)
	t.Cleanup(func() { testenv.Docker(t, "rmi", "-f", pull) })
	out := testenv.Docker(t, "run", "--rm", "--network", "host", pull)
	t.Logf("container output:\n%s", out)

	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines of output, got %q", out)
	}
	if lines[0] != "entrypoint.sh ran in /srv/app" {
		t.Errorf("first line %q: entrypoint.sh did not run first in the work dir", lines[0])
	}
	// pid=1: the main process replaced the wrapper shell (exec), so it gets signals.
	want := "main: prepared=yes pwd=/srv/app GREETING=hello world PORT=3000 args=one two pid=1"
	if lines[1] != want {
		t.Errorf("second line\n %q\nwant\n %q", lines[1], want)
	}
	labels := testenv.Docker(t, "inspect", "-f", `{{index .Config.Labels "dev.slipway.store"}} {{.Config.WorkingDir}}`, pull)
	if labels != "de /srv/app" {
		t.Errorf("inspect: %q", labels)
	}
}
