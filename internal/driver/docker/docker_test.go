package docker

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/moby/moby/client"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/driver/testapp"
)

func TestStartListStop(t *testing.T) {
	e := newDriver(t)
	ctx := context.Background()
	img := e.push("app", "sls", nil)
	spec := e.spec(img, "r1")
	inst := e.start(spec)

	if code, body := get(t, inst.Addr, "/healthz"); code != 200 || body != "ok" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	if _, body := get(t, inst.Addr, "/env?k=SECRET_TOKEN"); body != "s3cr3t value" {
		t.Errorf("SECRET_TOKEN in the container: %q", body)
	}
	wantPort := strconv.Itoa(spec.Port)
	if e.d.opts.netMode == NetworkHost {
		wantPort = portOf(t, inst.Addr) // the driver picked it
	}
	if _, body := get(t, inst.Addr, "/env?k=PORT"); body != wantPort {
		t.Errorf("PORT=%q, want %s", body, wantPort)
	}

	// Env goes in the create request's body: the process's argv and the
	// container's command do not show it.
	ir, err := e.d.Client().ContainerInspect(ctx, inst.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := ir.Container
	if strings.Contains(c.Path+strings.Join(c.Args, " "), "s3cr3t") {
		t.Errorf("the secret is on the command line: %s %v", c.Path, c.Args)
	}
	if c.HostConfig.RestartPolicy.Name != "unless-stopped" {
		t.Errorf("restart policy %q", c.HostConfig.RestartPolicy.Name)
	}
	if c.Config.StopTimeout == nil || *c.Config.StopTimeout != 5 {
		t.Errorf("stop timeout %v, want 5", c.Config.StopTimeout)
	}
	if c.Name != "/"+spec.Name {
		t.Errorf("name %q, want %q", c.Name, spec.Name)
	}

	list, err := e.d.List(ctx, map[string]string{driver.LabelProject: e.project})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != inst.ID || list[0].State != "running" || list[0].Addr != inst.Addr {
		t.Fatalf("List: %+v, want the one running instance %+v", list, inst)
	}
	for k, v := range spec.Labels {
		if list[0].Labels[k] != v {
			t.Errorf("label %s=%q, want %q", k, list[0].Labels[k], v)
		}
	}
	if list[0].Labels[driver.LabelManaged] != "true" {
		t.Errorf("no managed label: %v", list[0].Labels)
	}
	if list[0].Started.IsZero() || time.Since(list[0].Started) > time.Minute {
		t.Errorf("Started %v", list[0].Started)
	}
	if other, err := e.d.List(ctx, map[string]string{driver.LabelProject: e.project, driver.LabelRelease: "nope"}); err != nil || len(other) != 0 {
		t.Errorf("List for another release: %v %v", other, err)
	}

	var logs bytes.Buffer
	if err := e.d.Logs(ctx, inst.ID, &logs, false); err != nil {
		t.Fatal(err)
	}
	if logs.Len() == 0 {
		t.Error("no logs")
	}
	if strings.Contains(logs.String(), "s3cr3t") {
		t.Errorf("the secret is in the logs: %s", logs.String())
	}

	start := time.Now()
	if err := e.d.Stop(ctx, inst.ID); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 4*time.Second {
		t.Errorf("Stop of an app that exits on SIGTERM took %s", el)
	}
	if _, err := e.d.Client().ContainerInspect(ctx, inst.ID, client.ContainerInspectOptions{}); !isNotFound(err) {
		t.Errorf("container still there after Stop: %v", err)
	}
	if list, _ := e.d.List(ctx, map[string]string{driver.LabelProject: e.project}); len(list) != 0 {
		t.Errorf("List after Stop: %+v", list)
	}
	if err := e.d.Stop(ctx, inst.ID); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := e.d.Stop(ctx, "0123456789ab"); err != nil {
		t.Errorf("Stop of an unknown id: %v", err)
	}
	if err := e.d.Logs(ctx, inst.ID, &logs, false); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Logs of a removed container: %v, want ErrNotFound", err)
	}
	if _, err := e.d.Wait(ctx, inst.ID); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Wait on a removed container: %v, want ErrNotFound", err)
	}
}

func portOf(t *testing.T, addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPublishedOnLoopbackOnly: the engine binds the instance's port on
// 127.0.0.1 only, never on all interfaces: on a port the driver picked
// (the default for a local engine) or on an ephemeral one.
func TestPublishedOnLoopbackOnly(t *testing.T) {
	for _, pinned := range []bool{true, false} {
		t.Run("pinned="+strconv.FormatBool(pinned), func(t *testing.T) {
			e := newDriver(t, WithPinnedPorts(pinned))
			if e.d.opts.netMode == NetworkHost {
				t.Skip("host networking here: nothing is published")
			}
			ctx := context.Background()
			inst := e.start(e.spec(e.push("app", "loop", nil), "r1"))
			if !strings.HasPrefix(inst.Addr, "127.0.0.1:") {
				t.Fatalf("Addr %q", inst.Addr)
			}
			get(t, inst.Addr, "/healthz")
			ir, err := e.d.Client().ContainerInspect(ctx, inst.ID, client.ContainerInspectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			c := ir.Container
			if len(c.HostConfig.PortBindings) != 1 {
				t.Fatalf("port bindings %v", c.HostConfig.PortBindings)
			}
			want := ""
			if pinned {
				want = portOf(t, inst.Addr)
			}
			for p, bs := range c.HostConfig.PortBindings {
				for _, b := range bs {
					if b.HostIP.String() != "127.0.0.1" || b.HostPort != want {
						t.Errorf("requested binding %s -> %s:%q, want 127.0.0.1:%q", p, b.HostIP, b.HostPort, want)
					}
				}
			}
			n := 0
			for p, bs := range c.NetworkSettings.Ports {
				for _, b := range bs {
					n++
					if b.HostIP.String() != "127.0.0.1" {
						t.Errorf("%s is bound on %s", p, b.HostIP)
					}
					if net.JoinHostPort(b.HostIP.String(), b.HostPort) != inst.Addr {
						t.Errorf("binding %s:%s, Addr %s", b.HostIP, b.HostPort, inst.Addr)
					}
				}
			}
			if n != 1 {
				t.Errorf("%d bindings: %v", n, c.NetworkSettings.Ports)
			}
		})
	}
}

// TestRestartKeepsAddr: the engine restarts a crashed instance (restart
// policy unless-stopped) and it answers on the same Addr again. Wait returns
// on the crash; its code is not checked here: with a restart policy, Docker
// 20.10 sometimes reports the already restarted container's 0 (exit codes
// are checked by the conformance suite, which runs without one).
func TestRestartKeepsAddr(t *testing.T) {
	e := newDriver(t)
	if !e.d.Capabilities().Restart {
		t.Fatal("Capabilities.Restart false with the default restart policy")
	}
	ctx := context.Background()
	inst := e.start(e.spec(e.push("app", "restart", nil), "r1"))
	get(t, inst.Addr, "/healthz")
	waited := make(chan int, 1)
	go func() {
		code, err := e.d.Wait(ctx, inst.ID)
		if err != nil {
			t.Errorf("Wait: %v", err)
		}
		waited <- code
	}()
	time.Sleep(100 * time.Millisecond) // let Wait register
	get(t, inst.Addr, "/crash")
	select {
	case code := <-waited:
		if code != 3 && code != 0 {
			t.Errorf("Wait: %d, want the crash's 3 (or 0 when the restart won the race)", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Wait did not return after the crash")
	}
	if code, _ := get(t, inst.Addr, "/healthz"); code != 200 {
		t.Errorf("/healthz after the restart: %d", code)
	}
	list, err := e.d.List(ctx, map[string]string{driver.LabelProject: e.project})
	if err != nil || len(list) != 1 || list[0].Addr != inst.Addr || list[0].State != "running" {
		t.Errorf("List after the restart: %+v %v; want running on %s", list, err, inst.Addr)
	}
}

// TestHostNetwork runs an instance with host networking, whatever the
// engine supports: the driver picks the port and passes it in PORT.
func TestHostNetwork(t *testing.T) {
	e := newDriver(t, WithNetworkMode(NetworkHost))
	spec := e.spec(e.push("app", "host", nil), "r1")
	a := e.start(spec)
	b := e.start(e.spec(spec.Image, "r2"))
	if a.Addr == b.Addr {
		t.Fatalf("two instances on %s", a.Addr)
	}
	for _, inst := range []driver.Instance{a, b} {
		if !strings.HasPrefix(inst.Addr, "127.0.0.1:") {
			t.Fatalf("Addr %q", inst.Addr)
		}
		if _, body := get(t, inst.Addr, "/env?k=PORT"); body != portOf(t, inst.Addr) {
			t.Errorf("PORT=%q, Addr %s", body, inst.Addr)
		}
	}
	list, err := e.d.List(context.Background(), map[string]string{driver.LabelProject: e.project, driver.LabelRelease: "r1"})
	if err != nil || len(list) != 1 || list[0].Addr != a.Addr {
		t.Errorf("List: %+v %v; want Addr %s", list, err, a.Addr)
	}
}

// TestDataVolume: the same data key gets the same volume across instances
// (and releases); another key gets another, empty, one. Stop keeps them.
func TestDataVolume(t *testing.T) {
	e := newDriver(t)
	ctx := context.Background()
	img := e.push("app", "data", nil)
	k1, k2 := e.project+"-us", e.project+"-de"

	s := e.spec(img, "r1")
	s.DataKey = k1
	a := e.start(s)
	for want := 1; want <= 2; want++ {
		if _, body := get(t, a.Addr, "/data"); body != strconv.Itoa(want) {
			t.Fatalf("/data #%d: %q", want, body)
		}
	}
	if _, body := get(t, a.Addr, "/env?k=SLIPWAY_DATA_DIR"); body != "/data" {
		t.Errorf("SLIPWAY_DATA_DIR=%q", body)
	}
	if err := e.d.Stop(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	vol, err := e.d.Client().VolumeInspect(ctx, DataVolumeName(k1), client.VolumeInspectOptions{})
	if err != nil {
		t.Fatalf("the volume is gone after Stop: %v", err)
	}
	if vol.Volume.Name != "slipway-data-"+k1 || vol.Volume.Labels[driver.LabelManaged] != "true" ||
		vol.Volume.Labels[LabelDataKey] != k1 || vol.Volume.Labels[driver.LabelStore] != "us" {
		t.Errorf("volume %s labels %v", vol.Volume.Name, vol.Volume.Labels)
	}
	if _, ok := vol.Volume.Labels[driver.LabelRelease]; ok {
		t.Errorf("the volume carries a release label: %v", vol.Volume.Labels)
	}

	s2 := e.spec(img, "r2")
	s2.DataKey = k1
	b := e.start(s2)
	if _, body := get(t, b.Addr, "/data"); body != "3" {
		t.Errorf("/data in the next release: %q, want 3", body)
	}
	s3 := e.spec(img, "r3")
	s3.DataKey = k2
	c := e.start(s3)
	if _, body := get(t, c.Addr, "/data"); body != "1" {
		t.Errorf("/data with another key: %q, want 1", body)
	}
	if _, body := get(t, b.Addr, "/data"); body != "4" {
		t.Errorf("/data back on the first key: %q, want 4", body)
	}

	// A hook sees the same volume.
	var out bytes.Buffer
	code, err := e.d.Run(ctx, driver.RunSpec{
		Image: img, Name: e.project + "-hook", Cmd: []string{testapp.Path, "cat", "counter"},
		DataKey: k1, Labels: e.labels("r2"), Stdout: &out,
	})
	if err != nil || code != 0 {
		t.Fatalf("Run cat: %d %v", code, err)
	}
	if _, body := get(t, b.Addr, "/file?name=counter"); strings.TrimSpace(out.String()) != body {
		t.Errorf("hook read %q, instance has %q", out.String(), body)
	}
}

// TestRun: hook containers are removed after they exit and after their
// context is cancelled (the suite checks the rest of Run).
func TestRun(t *testing.T) {
	e := newDriver(t)
	ctx := context.Background()
	img := e.push("app", "run", nil)

	t.Run("exit", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		code, err := e.d.Run(ctx, driver.RunSpec{
			Image: img, Name: e.project + "-exit", Cmd: []string{testapp.Path, "exit", "3"},
			Labels: e.labels("r1"), Stdout: &stdout, Stderr: &stderr,
		})
		if err != nil || code != 3 {
			t.Fatalf("Run: %d %v", code, err)
		}
		if stdout.String() != "testapp stdout line\n" || stderr.String() != "testapp stderr line\n" {
			t.Errorf("stdout %q stderr %q", stdout.String(), stderr.String())
		}
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		pr := &lineWaiter{want: "ready", seen: make(chan struct{})}
		done := make(chan error, 1)
		go func() {
			_, err := e.d.Run(ctx, driver.RunSpec{
				Image: img, Name: e.project + "-tick", Cmd: []string{testapp.Path, "tick", "t"},
				DataKey: e.project + "-tick", Labels: e.labels("r1"), Stdout: pr,
			})
			done <- err
		}()
		select {
		case <-pr.seen:
		case err := <-done:
			t.Fatalf("Run returned before ready: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("no ready line")
		}
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run after cancel: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	})
	// Every hook container is gone.
	f := make(client.Filters).Add("label", driver.LabelProject+"="+e.project)
	cs, err := e.d.Client().ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.Items) != 0 {
		t.Errorf("%d hook containers left", len(cs.Items))
	}
}

// lineWaiter closes seen once a written line equals want.
type lineWaiter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *lineWaiter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for _, l := range strings.Split(w.buf.String(), "\n") {
		if l == w.want {
			w.once.Do(func() { close(w.seen) })
		}
	}
	return len(p), nil
}

// TestExitWaitLogs: without a restart policy, a crashed instance is listed
// as exited with its exit code, Wait returns the code, Logs follow ends.
func TestExitWaitLogs(t *testing.T) {
	e := newDriver(t, WithRestartPolicy("no"))
	if e.d.Capabilities().Restart {
		t.Error("Capabilities.Restart with restart policy no")
	}
	ctx := context.Background()
	inst := e.start(e.spec(e.push("app", "exit", nil), "r1"))

	logsDone := make(chan error, 1)
	var logs bytes.Buffer
	go func() { logsDone <- e.d.Logs(ctx, inst.ID, &logs, true) }()

	waited := make(chan int, 1)
	go func() {
		code, err := e.d.Wait(ctx, inst.ID)
		if err != nil {
			t.Errorf("Wait: %v", err)
		}
		waited <- code
	}()
	get(t, inst.Addr, "/crash")
	select {
	case code := <-waited:
		if code != 3 {
			t.Errorf("Wait: exit %d, want 3", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Wait did not return")
	}
	select {
	case err := <-logsDone:
		if err != nil {
			t.Errorf("Logs: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Logs follow did not end with the container")
	}
	if !strings.Contains(logs.String(), "/crash") {
		t.Errorf("followed logs lack the request: %q", logs.String())
	}
	list, err := e.d.List(ctx, map[string]string{driver.LabelProject: e.project})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].State != "exited" || list[0].ExitCode != 3 {
		t.Fatalf("List: %+v, want one exited with code 3", list)
	}
	if err := e.d.Stop(ctx, inst.ID); err != nil {
		t.Errorf("Stop of an exited instance: %v", err)
	}
}

// TestPrune: Prune removes the images the driver fetched except the ones
// to keep and the ones containers use; KeepDigests keeps current+previous.
func TestPrune(t *testing.T) {
	e := newDriver(t)
	ctx := context.Background()
	var imgs []driver.Image
	var digests []string
	for i := 1; i <= 4; i++ {
		img := e.push("app", "prune"+strconv.Itoa(i), nil)
		if _, err := e.d.EnsureImage(ctx, img); err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
		digests = append(digests, img.Ref[strings.LastIndex(img.Ref, "@")+1:])
	}
	// Release 4 runs; 1 has an exited container left; keep 2.
	e.start(e.spec(imgs[3], "r4"))
	s1 := e.spec(imgs[0], "r1")
	c1 := e.start(s1)
	if _, err := e.d.Client().ContainerStop(ctx, c1.ID, client.ContainerStopOptions{}); err != nil {
		t.Fatal(err)
	}

	removed, err := e.d.Prune(ctx, []string{digests[1]})
	if err != nil {
		t.Fatal(err)
	}
	mine := map[string]bool{}
	for _, r := range removed {
		mine[r] = true
	}
	if !mine[digests[2]] || mine[digests[0]] || mine[digests[1]] || mine[digests[3]] {
		t.Fatalf("removed %v; want %s and not %v", removed, digests[2], []string{digests[0], digests[1], digests[3]})
	}
	for i, dg := range digests {
		_, ok, err := e.d.imageID(ctx, OwnedTag(e.d.opts.imageRepo, dg))
		if err != nil {
			t.Fatal(err)
		}
		_, okRef, _ := e.d.imageID(ctx, imgs[i].Ref)
		if want := i != 2; ok != want || okRef != want {
			t.Errorf("image %d: tagged %v, by registry ref %v; want %v", i+1, ok, okRef, want)
		}
	}
	// Start fetches a pruned image again.
	e.start(e.spec(imgs[2], "r3"))

	// A keep list from a history: newest first, current is the second
	// newest after a rollback, n=1.
	keep := KeepDigests([]string{digests[3], digests[2], digests[1], digests[0]}, 1, 1)
	if strings.Join(keep, ",") != strings.Join([]string{digests[2], digests[1], digests[3]}, ",") {
		t.Errorf("KeepDigests: %v", keep)
	}
}

// TestOCILayout: an image in an OCI layout directory (the embedded store)
// is loaded into the engine, by image digest and by index digest.
func TestOCILayout(t *testing.T) {
	e := newDriver(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "store")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	img := testapp.Image(t, testapp.Options{Env: map[string]string{"TESTAPP_MARKER": "layout-" + e.project}})
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	dg, _ := img.Digest()
	e.digests = append(e.digests, dg.String())

	inst := e.start(e.spec(driver.Image{Ref: LayoutPrefix + dir + "@" + dg.String()}, "r1"))
	if _, body := get(t, inst.Addr, "/release"); body != "layout-"+e.project {
		t.Errorf("/release: %q", body)
	}
	if _, ok, _ := e.d.imageID(ctx, OwnedTag(e.d.opts.imageRepo, dg.String())); !ok {
		t.Errorf("no %s tag", OwnedTag(e.d.opts.imageRepo, dg.String()))
	}

	// A multi-platform index around a second image.
	img2 := testapp.Image(t, testapp.Options{Env: map[string]string{"TESTAPP_MARKER": "index-" + e.project}})
	cf, _ := img2.ConfigFile()
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{
		Add:        img2,
		Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: cf.OS, Architecture: cf.Architecture}},
	})
	if err := p.AppendIndex(idx); err != nil {
		t.Fatal(err)
	}
	idg, _ := idx.Digest()
	e.digests = append(e.digests, idg.String())
	inst2 := e.start(e.spec(driver.Image{Ref: LayoutPrefix + dir + "@" + idg.String()}, "r2"))
	if _, body := get(t, inst2.Addr, "/release"); body != "index-"+e.project {
		t.Errorf("/release from the index: %q", body)
	}

	// A digest the layout lacks is an error that names the layout.
	_, err = e.d.Start(ctx, e.spec(driver.Image{Ref: LayoutPrefix + dir + "@sha256:" + strings.Repeat("0", 64)}, "r3"))
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("missing digest: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
}

// TestStartReplacesStaleName: a stopped container the driver owns with the
// same name (left by a crash) does not block Start.
func TestStartReplacesStaleName(t *testing.T) {
	e := newDriver(t)
	ctx := context.Background()
	s := e.spec(e.push("app", "stale", nil), "r1")
	old := e.start(s)
	if _, err := e.d.Client().ContainerStop(ctx, old.ID, client.ContainerStopOptions{}); err != nil {
		t.Fatal(err)
	}
	inst := e.start(s)
	if inst.ID == old.ID {
		t.Fatal("same container")
	}
	// A running one with the name is a conflict.
	if _, err := e.d.Start(ctx, s); err == nil {
		t.Error("Start with the name of a running instance succeeded")
	}
}

// TestClientSideFetch: the path for an insecure registry the engine does
// not trust: the driver fetches the image itself and loads it.
func TestClientSideFetch(t *testing.T) {
	e := newDriver(t)
	e.d.fetchHere = true
	ctx := context.Background()
	img := e.push("app", "here", nil)
	img.Insecure = true
	inst := e.start(e.spec(img, "r1"))
	if _, body := get(t, inst.Addr, "/release"); body != "here-"+e.project {
		t.Errorf("/release: %q", body)
	}
	res, err := e.d.Client().ImageInspect(ctx, OwnedTag(e.d.opts.imageRepo, e.digests[0]))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.RepoDigests) != 0 {
		t.Errorf("loaded image has registry digests %v: it was pulled by the engine", res.RepoDigests)
	}
}
