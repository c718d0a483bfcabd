package process

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/driver/drivertest"
	"github.com/slipway-dev/slipway/internal/driver/testapp"
	"github.com/slipway-dev/slipway/internal/image"
	"github.com/slipway-dev/slipway/internal/imageref"
	"github.com/slipway-dev/slipway/internal/registry"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// layoutStore publishes test images to an OCI layout in a temporary directory.
type layoutStore struct {
	l *registry.Layout
	n int
}

func newLayoutStore(t testing.TB) *layoutStore {
	t.Helper()
	l, err := registry.OpenLayout(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &layoutStore{l: l}
}

func (s *layoutStore) publish(t testing.TB, img v1.Image) driver.Image {
	t.Helper()
	s.n++
	ref, err := name.NewTag(fmt.Sprintf("slipway.test/drivertest:%d", s.n))
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.l.Publish(context.Background(), ref, img)
	if err != nil {
		t.Fatal(err)
	}
	return driver.Image{Ref: imageref.LayoutPrefix + s.l.Dir() + "@" + d.DigestStr()}
}

func newDriver(t testing.TB, dir string, opts ...Option) *Driver {
	t.Helper()
	d, err := New(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestConformance(t *testing.T) {
	store := newLayoutStore(t)
	var mu sync.Mutex
	dirs := map[driver.Driver]string{}
	drivertest.Run(t, drivertest.Harness{
		NewDriver: func(t *testing.T) driver.Driver {
			dir := t.TempDir()
			d := newDriver(t, dir)
			mu.Lock()
			dirs[d] = dir
			mu.Unlock()
			return d
		},
		Publish: func(t *testing.T, img v1.Image) driver.Image { return store.publish(t, img) },
		Reopen: func(t *testing.T, d driver.Driver) driver.Driver {
			mu.Lock()
			dir := dirs[d]
			mu.Unlock()
			return newDriver(t, dir)
		},
		AppGOOS: runtime.GOOS,
	})
}

// appImage publishes the test app built for this host.
func appImage(t *testing.T, store *layoutStore, env map[string]string) driver.Image {
	t.Helper()
	return store.publish(t, testapp.Image(t, testapp.Options{GOOS: runtime.GOOS, Env: env}))
}

func startApp(t *testing.T, d *Driver, spec driver.Spec) driver.Instance {
	t.Helper()
	if spec.Name == "" {
		spec.Name = "t-" + newID()
	}
	inst, err := d.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background(), inst.ID) })
	waitHealthy(t, inst.Addr)
	return inst
}

func waitHealthy(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := httpGet(addr, "/healthz"); err == nil {
			return
		}
	}
	t.Fatalf("%s not healthy", addr)
}

func TestUnpackOncePerDigest(t *testing.T) {
	store := newLayoutStore(t)
	img := appImage(t, store, nil)
	dir := t.TempDir()
	d := newDriver(t, dir)

	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			startApp(t, d, driver.Spec{Image: img})
		}()
	}
	wg.Wait()
	startApp(t, d, driver.Spec{Image: img})
	if n := d.unpacks.Load(); n != 1 {
		t.Errorf("4 starts of one digest unpacked it %d times, want 1", n)
	}
	// Another Driver on the same directory uses what is on disk.
	d2 := newDriver(t, dir)
	startApp(t, d2, driver.Spec{Image: img})
	if n := d2.unpacks.Load(); n != 0 {
		t.Errorf("a second Driver unpacked the image again (%d times)", n)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "images"))
	if len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), "sha256-") {
		t.Errorf("images dir holds %v, want one sha256-<hex> and no leftovers", ents)
	}
}

func TestEnvironment(t *testing.T) {
	store := newLayoutStore(t)
	img := appImage(t, store, map[string]string{"PATH": "/app:/nonexistent", "HOST": "0.0.0.0"})
	dir := t.TempDir()
	d := newDriver(t, dir, WithHostPath("/usr/bin:/bin"))
	secret := "sk_test_" + newID()
	inst := startApp(t, d, driver.Spec{Image: img, DataKey: "shop", Port: 8080,
		Env: map[string]string{"API_SECRET": secret, "PORT": "1"}})

	for k, want := range map[string]string{
		"HOST":             "127.0.0.1", // the driver's, over the image's
		"SLIPWAY_DATA_DIR": filepath.Join(dir, "data", "shop"),
		"PORT":             strings.TrimPrefix(inst.Addr, "127.0.0.1:"),
	} {
		if got, _ := httpGet(inst.Addr, "/env?k="+k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	path, _ := httpGet(inst.Addr, "/env?k=PATH")
	digest := strings.SplitN(img.Ref, "@", 2)[1]
	rootfs := filepath.Join(dir, "images", imageDirName(digest), "rootfs")
	if want := filepath.Join(rootfs, "app") + ":/usr/bin:/bin"; path != want {
		t.Errorf("PATH = %q, want %q (existing image entries mapped into the rootfs, then the host's)", path, want)
	}
	if got, err := httpGet(inst.Addr, "/env?k=HOME"); err == nil {
		t.Errorf("the host's HOME leaked into the instance: %q", got)
	}
	cwd := ""
	if pid, err := httpGet(inst.Addr, "/pid"); err == nil {
		cwd, _ = os.Readlink("/proc/" + pid + "/cwd")
	}
	if runtime.GOOS == "linux" && cwd != filepath.Join(rootfs, "app") {
		t.Errorf("cwd = %q, want the image's WorkingDir in the rootfs", cwd)
	}

	// The secret is nowhere on disk but in the process's memory.
	filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || strings.HasPrefix(p, filepath.Join(dir, "images")) {
			return nil
		}
		if b, _ := os.ReadFile(p); strings.Contains(string(b), secret) {
			t.Errorf("%s contains the secret", p)
		}
		return nil
	})
}

func TestHostInterpreter(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	// A scratch image has no sh: the host's is found along PATH, and runs
	// in the image's working directory.
	store := newLayoutStore(t)
	img := appImage(t, store, nil)
	d := newDriver(t, t.TempDir())
	var out strings.Builder
	code, err := d.Run(context.Background(), driver.RunSpec{
		Image: img, Cmd: []string{"sh", "-c", "pwd; ls"}, Stdout: &out, Stderr: &out,
	})
	if err != nil || code != 0 {
		t.Fatalf("Run = %d, %v; output %q", code, err, out.String())
	}
	lines := strings.Fields(out.String())
	if len(lines) != 2 || !strings.HasSuffix(lines[0], "/rootfs/app") || lines[1] != "testapp" {
		t.Errorf("output %q, want the rootfs's /app and its testapp", out.String())
	}
}

func TestRestartRecovery(t *testing.T) {
	store := newLayoutStore(t)
	img := appImage(t, store, nil)
	dir := t.TempDir()
	a := newDriver(t, dir)
	inst, err := a.Start(context.Background(), driver.Spec{Image: img, Name: "survivor", Labels: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, inst.Addr)
	pidStr, _ := httpGet(inst.Addr, "/pid")
	pid, _ := strconv.Atoi(pidStr)
	a = nil // Slipway restarts

	b := newDriver(t, dir)
	got, err := b.List(context.Background(), map[string]string{"k": "v"})
	if err != nil || len(got) != 1 || got[0].ID != inst.ID || got[0].State != "running" || got[0].Addr != inst.Addr {
		t.Fatalf("the new Driver lists %+v, %v; want %+v", got, err, inst)
	}
	if err := b.Stop(context.Background(), inst.ID); err != nil {
		t.Fatal(err)
	}
	if ok := waitDead(pid, 5*time.Second); !ok {
		t.Errorf("pid %d still alive after Stop through the new Driver", pid)
	}
	if got, _ := b.List(context.Background(), nil); len(got) != 0 {
		t.Errorf("List after Stop = %+v", got)
	}
}

func waitDead(pid int, d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, alive := procStart(pid); !alive {
			return true
		}
	}
	return false
}

// A record whose pid now belongs to another process (here: this test) must
// read as exited, and Stop must not signal that process or its group.
func TestReusedPID(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("start times need /proc")
	}
	d := newDriver(t, t.TempDir())
	ticks, _ := procStart(os.Getpid())
	r := &record{
		ID: "0123456789abcdef", Name: "ghost", Labels: map[string]string{driver.LabelManaged: "true"},
		Digest: "sha256:" + strings.Repeat("a", 64), Addr: "127.0.0.1:1",
		PID: os.Getpid(), PGID: syscall.Getpgrp(), StartTicks: ticks + 1, StopTimeoutMS: 10,
		Started: time.Now(), State: stateRunning,
	}
	if err := d.writeRecord(r); err != nil {
		t.Fatal(err)
	}
	got, err := d.List(context.Background(), nil)
	if err != nil || len(got) != 1 || got[0].State != "exited" || got[0].ExitCode != -1 {
		t.Fatalf("List = %+v, %v; want the ghost exited with code -1", got, err)
	}
	if code, err := d.Wait(context.Background(), r.ID); err != nil || code != -1 {
		t.Errorf("Wait = %d, %v", code, err)
	}
	if err := d.Stop(context.Background(), r.ID); err != nil { // must not kill us
		t.Fatal(err)
	}
	if _, err := os.Stat(d.recordPath(r.ID)); !os.IsNotExist(err) {
		t.Errorf("record left after Stop: %v", err)
	}
}

func TestLogRotation(t *testing.T) {
	store := newLayoutStore(t)
	img := appImage(t, store, nil)
	const limit = 4096
	d := newDriver(t, t.TempDir(), WithLogLimit(limit))
	inst := startApp(t, d, driver.Spec{Image: img})
	var last string
	for i := range 150 {
		last = fmt.Sprintf("mark-%03d-%s", i, strings.Repeat("x", 40))
		httpGet(inst.Addr, "/healthz?m="+last)
	}
	time.Sleep(100 * time.Millisecond)
	var out strings.Builder
	if err := d.Logs(context.Background(), inst.ID, &out, false); err != nil {
		t.Fatal(err)
	}
	if out.Len() > 2*limit+1024 {
		t.Errorf("Logs gave %d bytes with a %d-byte limit", out.Len(), limit)
	}
	if !strings.Contains(out.String(), last) {
		t.Errorf("Logs lost the newest line %q", last)
	}
	if _, err := os.Stat(d.logPath(inst.ID) + ".1"); err != nil {
		t.Errorf("no rotated log: %v", err)
	}
}

func TestNewRejectsPathSeparator(t *testing.T) {
	if _, err := New(filepath.Join(t.TempDir(), "a:b")); err == nil {
		t.Error("New accepted a data dir with ':' (it would break PATH)")
	}
}

func TestRunBadDataKey(t *testing.T) {
	store := newLayoutStore(t)
	img := appImage(t, store, nil)
	d := newDriver(t, t.TempDir())
	for _, key := range []string{"../escape", "a/b", ".hidden"} {
		if _, err := d.Run(context.Background(), driver.RunSpec{Image: img, Cmd: []string{testapp.Path, "exit", "0"}, DataKey: key}); err == nil {
			t.Errorf("Run with DataKey %q succeeded", key)
		}
	}
}

func TestStartNeedsDigest(t *testing.T) {
	d := newDriver(t, t.TempDir())
	if _, err := d.Start(context.Background(), driver.Spec{Image: driver.Image{Ref: "127.0.0.1:1/app:latest"}}); err == nil || !strings.Contains(err.Error(), "digest") {
		t.Errorf("Start of a tag reference: %v, want a digest error", err)
	}
}

func TestRegistryPull(t *testing.T) {
	reg := testenv.StartRegistry(t)
	img := testapp.Image(t, testapp.Options{GOOS: runtime.GOOS, Env: map[string]string{"TESTAPP_MARKER": "from-registry"}})
	ref, err := name.NewTag(reg.Repo("drivertest/app") + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	dig, err := registry.NewRemote().Publish(context.Background(), ref, img)
	if err != nil {
		t.Fatal(err)
	}
	d := newDriver(t, t.TempDir())
	inst := startApp(t, d, driver.Spec{Image: driver.Image{Ref: dig.String()}})
	if got, _ := httpGet(inst.Addr, "/release"); got != "from-registry" {
		t.Errorf("/release = %q", got)
	}
}

// Slipway's entrypoint-script wrapper runs the image's script and then the
// main process from the root filesystem, not from the host's paths.
func TestEntrypointScript(t *testing.T) {
	base := testenv.BusyboxImage(t)
	deploy := t.TempDir()
	bin, err := os.ReadFile(testapp.Binary(t, runtime.GOOS))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(deploy, "testapp"), bin, 0o755)
	os.WriteFile(filepath.Join(deploy, image.EntrypointScript), []byte("echo \"prepared in $(pwd)\" > \"$SLIPWAY_DATA_DIR/prepared\"\n"), 0o644)
	img, err := image.Build(context.Background(), image.Spec{Base: base, Dir: deploy, WorkDir: testapp.WorkDir, Entrypoint: []string{testapp.Path}})
	if err != nil {
		t.Fatal(err)
	}
	store := newLayoutStore(t)
	d := newDriver(t, t.TempDir())
	inst := startApp(t, d, driver.Spec{Image: store.publish(t, img), DataKey: "k"})
	got, err := httpGet(inst.Addr, "/file?name=prepared")
	if err != nil || !strings.HasPrefix(got, "prepared in /") || !strings.HasSuffix(strings.TrimSpace(got), "/rootfs/app") {
		t.Errorf("entrypoint.sh wrote %q, %v; want it run in the rootfs's /app", got, err)
	}
}

// A hook is recorded while it runs, so that when Slipway dies mid-hook the
// next Driver lists it (role=hook) and stops it with its whole group; a hook
// that returns leaves no record.
func TestHookRecordedWhileRunning(t *testing.T) {
	store := newLayoutStore(t)
	img := appImage(t, store, nil)
	dir := t.TempDir()
	a := newDriver(t, dir)
	labels := driver.ManagedLabels("p", "s", "app", "r1", "")
	delete(labels, driver.LabelRole) // the driver says it is a hook

	if code, err := a.Run(context.Background(), driver.RunSpec{Image: img, Name: "quick", Cmd: []string{"exit 0"}, Shell: true, Labels: labels}); err != nil || code != 0 {
		t.Fatalf("Run = %d, %v", code, err)
	}
	if got, _ := a.List(context.Background(), nil); len(got) != 0 {
		t.Fatalf("List after a finished hook = %+v, want nothing", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	ran := make(chan error, 1)
	go func() {
		// The grandchild (sleep) shares the hook's group: it must go too.
		_, err := a.Run(ctx, driver.RunSpec{Image: img, Name: "slow", Shell: true, Labels: labels,
			Cmd: []string{"sleep 30 & echo $! > " + pidFile + "; wait"}})
		ran <- err
	}()
	var sleepPID int
	for deadline := time.Now().Add(10 * time.Second); sleepPID == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(pidFile)
		sleepPID, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if sleepPID == 0 {
		t.Fatal("the hook did not start")
	}

	b := newDriver(t, dir) // Slipway restarted while the hook runs
	got, err := b.List(context.Background(), map[string]string{driver.LabelRole: "hook", driver.LabelRelease: "r1"})
	if err != nil || len(got) != 1 || got[0].Name != "slow" || got[0].State != "running" || got[0].Addr != "" {
		t.Fatalf("the new Driver lists %+v, %v; want the running hook", got, err)
	}
	if err := b.Stop(context.Background(), got[0].ID); err != nil {
		t.Fatal(err)
	}
	if !waitDead(sleepPID, 5*time.Second) {
		t.Errorf("the hook's sleep (pid %d) outlived Stop", sleepPID)
	}
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its hook was stopped")
	}
	if got, _ := b.List(context.Background(), nil); len(got) != 0 {
		t.Errorf("List after Stop = %+v", got)
	}
}
