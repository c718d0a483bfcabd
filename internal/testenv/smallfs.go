//go:build linux

package testenv

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SmallFS mounts a tmpfs of size bytes on a fresh directory and returns it,
// for tests that must really fill a file system (full-disk handling). It
// needs root (CAP_SYS_ADMIN): elsewhere it skips, or fails under
// SLIPWAY_REQUIRE_DOCKER=1 (CI runs as root). The mount is lazily unmounted
// at the end of the test, before the directory is removed.
func SmallFS(t testing.TB, size int64) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "slipway-smallfs-")
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		os.Remove(dir)
		unavailable(t, "mounting a %d-byte tmpfs: %v (needs root)", size, err)
		return ""
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Logf("unmounting %s: %v", dir, err)
		}
		os.Remove(dir)
	})
	return dir
}

// KeepFull fills the file system of dir and keeps it full: space that is
// freed (a deleted log) is taken again within a millisecond, so the code
// under test cannot slip a write in. free stops that and removes the filler.
func KeepFull(t testing.TB, dir string) (free func()) {
	t.Helper()
	f, err := os.CreateTemp(dir, "filler-")
	if err != nil {
		t.Fatalf("filling %s: %v", dir, err)
	}
	fill := func() {
		buf := make([]byte, 64<<10)
		for n := len(buf); n >= 512; n /= 2 {
			for {
				if _, err := f.Write(buf[:n]); err != nil {
					break
				}
			}
		}
	}
	fill()
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(500 * time.Microsecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				fill()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			<-done
			f.Close()
			os.Remove(f.Name())
		})
	}
}
