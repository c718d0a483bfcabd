package testenv

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

var (
	nodeOnce sync.Once
	nodeImg  v1.Image
	nodeErr  error
)

// NodeImage returns BusyboxImage plus the host's node binary at
// /usr/local/bin/node and the shared libraries it links (found with ldd), so
// that Node.js apps run in containers on a machine that can pull from no hub.
// PATH is /usr/local/bin:/bin. Skips (or fails under SLIPWAY_REQUIRE_DOCKER=1)
// when node or busybox is missing.
func NodeImage(t testing.TB) v1.Image {
	t.Helper()
	bb := BusyboxImage(t)
	if bb == nil {
		return nil
	}
	node, err := exec.LookPath("node")
	if err != nil {
		unavailable(t, "node is not installed: %v", err)
		return nil
	}
	nodeOnce.Do(func() { nodeImg, nodeErr = buildNodeImage(bb, node) })
	if nodeErr != nil {
		t.Fatalf("building the node image: %v", nodeErr)
	}
	return nodeImg
}

var lddRe = regexp.MustCompile(`(?:=>\s*)?(/\S+)\s+\(0x`)

func buildNodeImage(base v1.Image, node string) (v1.Image, error) {
	node, err := filepath.EvalSymlinks(node)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command("ldd", node).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", node, err)
	}
	files := map[string]string{"usr/local/bin/node": node} // image path -> host file
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		m := lddRe.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		real, err := filepath.EvalSymlinks(m[1])
		if err != nil {
			return nil, err
		}
		files[strings.TrimPrefix(m[1], "/")] = real
		files[strings.TrimPrefix(real, "/")] = real
	}
	// The layer is big (the node binary): write it once per test process to a temp file.
	f, err := os.CreateTemp("", "slipway-testenv-node-*.tar")
	if err != nil {
		return nil, err
	}
	path := f.Name()
	tw := tar.NewWriter(f)
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	dirs := map[string]bool{}
	for _, n := range names {
		for d := filepath.Dir(n); d != "."; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	var dl []string
	for d := range dirs {
		dl = append(dl, d)
	}
	sort.Strings(dl)
	for _, d := range dl {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: imageEpoch}); err != nil {
			return nil, err
		}
	}
	for _, n := range names {
		src, err := os.Open(files[n])
		if err != nil {
			return nil, err
		}
		st, _ := src.Stat()
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o755, Size: st.Size(), ModTime: imageEpoch}); err != nil {
			src.Close()
			return nil, err
		}
		_, err = io.Copy(tw, src)
		src.Close()
		if err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromFile(path)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Config.Env = []string{"PATH=/usr/local/bin:/bin"}
	cf.Config.Labels = map[string]string{"org.opencontainers.image.title": "slipway-testenv-node"}
	return mutate.ConfigFile(img, cf)
}

// BuildNodeImage builds NodeImage's image outside a test (for benchmarks):
// the static busybox image plus the host's node and the libraries it links.
func BuildNodeImage() (v1.Image, error) {
	bb, err := findBusybox()
	if err != nil {
		return nil, fmt.Errorf("no static busybox (Debian package busybox-static): %w", err)
	}
	base, err := buildBusyboxImage(bb)
	if err != nil {
		return nil, err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("node is not installed: %w", err)
	}
	return buildNodeImage(base, node)
}
