package testenv

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// busyboxCandidates are where Debian's busybox-static puts the binary.
var busyboxCandidates = []string{"/bin/busybox", "/usr/bin/busybox"}

// BusyboxPath returns the path of a statically linked busybox (Debian's
// busybox-static installs /bin/busybox), checked to have no ELF interpreter so
// it runs in an otherwise empty container. It skips the test when there is
// none, or fails it when SLIPWAY_REQUIRE_DOCKER=1.
//
// Known quirk: this build's `wget -T SECONDS` segfaults; bound wget with
// `timeout` instead.
func BusyboxPath(t testing.TB) string {
	t.Helper()
	p, err := findBusybox()
	if err != nil {
		unavailable(t, "no static busybox (Debian package busybox-static): %v", err)
		return ""
	}
	return p
}

func findBusybox() (string, error) {
	cands := busyboxCandidates
	if p, err := exec.LookPath("busybox"); err == nil {
		cands = append(cands, p)
	}
	var errs []error
	for _, p := range cands {
		err := checkStatic(p)
		if err == nil {
			return p, nil
		}
		errs = append(errs, err)
	}
	return "", errors.Join(errs...)
}

// checkStatic reports an error unless path is an ELF executable for this
// architecture without a PT_INTERP segment (no dynamic loader needed).
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	if m, ok := elfMachines[runtime.GOARCH]; ok && f.Machine != m {
		return fmt.Errorf("%s: built for %s, not %s", path, f.Machine, runtime.GOARCH)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s: dynamically linked (has an ELF interpreter)", path)
		}
	}
	return nil
}

var elfMachines = map[string]elf.Machine{
	"amd64":   elf.EM_X86_64,
	"arm64":   elf.EM_AARCH64,
	"386":     elf.EM_386,
	"arm":     elf.EM_ARM,
	"riscv64": elf.EM_RISCV,
	"ppc64le": elf.EM_PPC64,
	"s390x":   elf.EM_S390,
}

// BusyboxApplets are the commands linked to busybox in BusyboxImage's /bin.
var BusyboxApplets = []string{
	"[", "awk", "cat", "chmod", "cp", "date", "echo", "env", "false", "grep",
	"head", "hostname", "httpd", "id", "kill", "ln", "ls", "mkdir", "mv", "nc",
	"printf", "ps", "pwd", "rm", "sed", "sh", "sleep", "sort", "tail", "tar",
	"tee", "test", "touch", "true", "uname", "wc", "wget", "whoami", "xargs",
}

// imageEpoch is the fixed time of every file and of the image itself, so the
// image's digest depends only on the busybox binary.
var imageEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

var busyboxImages sync.Map // path -> *busyboxResult

type busyboxResult struct {
	once sync.Once
	img  v1.Image
	err  error
}

// BusyboxImage returns a one-layer linux/GOARCH image built in-process from
// BusyboxPath: /bin/busybox (0755), /bin/<applet> symlinks to it for
// BusyboxApplets, /etc/passwd and /etc/group with root and nobody, an empty
// /tmp (1777); Env PATH=/bin, Cmd /bin/sh. Entries are sorted and times fixed,
// so the digest is the same on every run for the same busybox. Docker media
// types, so `docker load` and old registries take it.
func BusyboxImage(t testing.TB) v1.Image {
	t.Helper()
	path := BusyboxPath(t)
	if path == "" {
		return nil
	}
	v, _ := busyboxImages.LoadOrStore(path, &busyboxResult{})
	res := v.(*busyboxResult)
	res.once.Do(func() { res.img, res.err = buildBusyboxImage(path) })
	if res.err != nil {
		t.Fatalf("building busybox image: %v", res.err)
		return nil
	}
	return res.img
}

type tarEntry struct {
	hdr  tar.Header
	body []byte
}

// buildBusyboxImage assembles the image; each call gives the same digest.
func buildBusyboxImage(path string) (v1.Image, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	dir := func(name string, mode int64) tarEntry {
		return tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}}
	}
	file := func(name string, mode int64, body []byte) tarEntry {
		return tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}, body: body}
	}
	entries := []tarEntry{
		dir("bin/", 0o755),
		file("bin/busybox", 0o755, bin),
		dir("etc/", 0o755),
		file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")),
		file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")),
		dir("root/", 0o700),
		dir("tmp/", 0o1777),
	}
	for _, a := range BusyboxApplets {
		entries = append(entries, tarEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777}})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].hdr.Name < entries[j].hdr.Name })

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		h.ModTime = imageEpoch
		h.Uname, h.Gname = "root", "root"
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			return nil, fmt.Errorf("writing layer entry %s: %w", h.Name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, fmt.Errorf("writing layer entry %s: %w", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing layer: %w", err)
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("making layer: %w", err)
	}

	cf, err := empty.Image.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = runtime.GOARCH
	cf.Created = v1.Time{Time: imageEpoch}
	cf.Config.Env = []string{"PATH=/bin"}
	cf.Config.Cmd = []string{"/bin/sh"}
	cf.Config.Labels = map[string]string{"org.opencontainers.image.title": "slipway-testenv-busybox"}
	img, err := mutate.ConfigFile(empty.Image, cf)
	if err != nil {
		return nil, fmt.Errorf("setting config: %w", err)
	}
	img, err = mutate.Append(img, mutate.Addendum{
		// plainLayer hides the tarball layer's Descriptor(), whose empty
		// (non-nil) Annotations map makes Manifest() differ from the parsed
		// RawManifest() (go-containerregistry v0.22.1), failing validate.Image.
		Layer: plainLayer{layer},
		History: v1.History{
			Created:   v1.Time{Time: imageEpoch},
			CreatedBy: "slipway testenv.BusyboxImage",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("appending layer: %w", err)
	}
	return img, nil
}

// plainLayer exposes only the v1.Layer methods of the layer it wraps.
type plainLayer struct{ v1.Layer }
