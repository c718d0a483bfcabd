package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The base image both tools build on: the same image internal/testenv's
// NodeImage makes (a static busybox layer, then the host's node binary and
// the shared libraries it links), rebuilt here because testenv's builders
// take a testing.TB. Docker media types, fixed times: the digest depends only
// on the host's busybox and node binaries.

var baseEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

var busyboxApplets = []string{
	"[", "awk", "cat", "chmod", "cp", "date", "echo", "env", "false", "grep",
	"head", "hostname", "id", "kill", "ln", "ls", "mkdir", "mv", "nc",
	"printf", "ps", "pwd", "rm", "sed", "sh", "sleep", "sort", "tail", "tar",
	"tee", "test", "touch", "true", "uname", "wc", "wget", "whoami", "xargs",
}

// plainLayer hides a tarball layer's Descriptor() (see internal/testenv).
type plainLayer struct{ v1.Layer }

func findStaticBusybox() (string, error) {
	cands := []string{"/bin/busybox", "/usr/bin/busybox"}
	if p, err := exec.LookPath("busybox"); err == nil {
		cands = append(cands, p)
	}
	for _, p := range cands {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		static := true
		for _, pr := range f.Progs {
			if pr.Type == elf.PT_INTERP {
				static = false
			}
		}
		f.Close()
		if static {
			return p, nil
		}
	}
	return "", fmt.Errorf("no static busybox in %v (Debian package busybox-static)", cands)
}

// buildBaseImage writes the node layer to a file under work and returns the image.
func buildBaseImage(work string) (v1.Image, error) {
	bbPath, err := findStaticBusybox()
	if err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(bbPath)
	if err != nil {
		return nil, err
	}
	type entry struct {
		hdr  tar.Header
		body []byte
	}
	dir := func(name string, mode int64) entry {
		return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}}
	}
	file := func(name string, mode int64, body []byte) entry {
		return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}, body: body}
	}
	entries := []entry{
		dir("bin/", 0o755),
		file("bin/busybox", 0o755, bin),
		dir("etc/", 0o755),
		file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")),
		file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")),
		dir("root/", 0o700),
		dir("tmp/", 0o1777),
	}
	for _, a := range busyboxApplets {
		entries = append(entries, entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777}})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].hdr.Name < entries[j].hdr.Name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		h.ModTime = baseEpoch
		h.Uname, h.Gname = "root", "root"
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	bbBytes := buf.Bytes()
	bbLayer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(bbBytes)), nil
	})
	if err != nil {
		return nil, err
	}

	nodeTar := filepath.Join(work, "base-node-layer.tar")
	if err := writeNodeLayer(nodeTar); err != nil {
		return nil, fmt.Errorf("node layer: %w", err)
	}
	nodeLayer, err := tarball.LayerFromFile(nodeTar)
	if err != nil {
		return nil, err
	}

	cf, err := empty.Image.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Created = v1.Time{Time: baseEpoch}
	cf.Config.Env = []string{"PATH=/usr/local/bin:/bin"}
	cf.Config.Cmd = []string{"/bin/sh"}
	cf.Config.Labels = map[string]string{"org.opencontainers.image.title": "slipway-bench-image-node-base"}
	img, err := mutate.ConfigFile(empty.Image, cf)
	if err != nil {
		return nil, err
	}
	return mutate.Append(img,
		mutate.Addendum{Layer: plainLayer{bbLayer}, History: v1.History{Created: v1.Time{Time: baseEpoch}, CreatedBy: "bench/image: busybox"}},
		mutate.Addendum{Layer: plainLayer{nodeLayer}, History: v1.History{Created: v1.Time{Time: baseEpoch}, CreatedBy: "bench/image: host node + libs"}},
	)
}

var lddRe = regexp.MustCompile(`(?:=>\s*)?(/\S+)\s+\(0x`)

// writeNodeLayer tars the host's node at /usr/local/bin/node plus the shared
// libraries ldd lists, at their paths (and their symlink targets' paths).
func writeNodeLayer(dst string) error {
	node, err := exec.LookPath("node")
	if err != nil {
		return fmt.Errorf("node is not installed: %w", err)
	}
	if node, err = filepath.EvalSymlinks(node); err != nil {
		return err
	}
	out, err := exec.Command("ldd", node).Output()
	if err != nil {
		return fmt.Errorf("ldd %s: %w", node, err)
	}
	files := map[string]string{"usr/local/bin/node": node}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := lddRe.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		real, err := filepath.EvalSymlinks(m[1])
		if err != nil {
			return err
		}
		files[strings.TrimPrefix(m[1], "/")] = real
		files[strings.TrimPrefix(real, "/")] = real
	}
	names := make([]string, 0, len(files))
	dirs := map[string]bool{}
	for n := range files {
		names = append(names, n)
		for d := filepath.Dir(n); d != "."; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	sort.Strings(names)
	dl := make([]string, 0, len(dirs))
	for d := range dirs {
		dl = append(dl, d)
	}
	sort.Strings(dl)
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, d := range dl {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: baseEpoch}); err != nil {
			return err
		}
	}
	for _, n := range names {
		src, err := os.Open(files[n])
		if err != nil {
			return err
		}
		st, err := src.Stat()
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o755, Size: st.Size(), ModTime: baseEpoch})
		}
		if err == nil {
			_, err = io.Copy(tw, src)
		}
		src.Close()
		if err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}
