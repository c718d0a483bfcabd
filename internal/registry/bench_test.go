package registry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/image"
	"github.com/slipway-dev/slipway/internal/testenv"
)

// benchTree writes a deterministic ~50 MB .deploy: 45 MB of JavaScript-like
// text in 4,500 files (compresses about 3:1, like node_modules) and 5 MB of
// incompressible assets. SLIPWAY_BENCH_DIR uses a real tree instead.
func benchTree(b *testing.B) string {
	b.Helper()
	if dir := os.Getenv("SLIPWAY_BENCH_DIR"); dir != "" {
		return dir
	}
	dir := b.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("function return const let var if else for while module exports require import from " +
		"this that value key props state render component useEffect useState async await Promise then catch " +
		"null undefined true false Object Array String Number length push map filter reduce forEach")
	var sb strings.Builder
	for i := 0; i < 4500; i++ {
		sb.Reset()
		for sb.Len() < 10_000 {
			sb.WriteString(words[rng.IntN(len(words))])
			if rng.IntN(8) == 0 {
				fmt.Fprintf(&sb, "_%d", rng.IntN(1000))
			}
			sb.WriteString([]string{" ", " ", ".", "(", ");\n", " = ", ", "}[rng.IntN(7)])
		}
		p := filepath.Join(dir, "node_modules", fmt.Sprintf("pkg%03d", i/30), "lib", fmt.Sprintf("m%d.js", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(sb.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	blob := make([]byte, 1<<20)
	for i := 0; i < 5; i++ {
		for j := range blob {
			blob[j] = byte(rng.Uint32())
		}
		p := filepath.Join(dir, "public", fmt.Sprintf("asset%d.webp", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, blob, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkBuildPublish times Build + Publish of a ~50 MB tree on busybox to
// a local registry. cold: a new repository each time (everything of the app
// layer is compressed and uploaded); warm: the same image is already there.
func BenchmarkBuildPublish(b *testing.B) {
	dir := benchTree(b)
	reg := testenv.StartRegistry(b)
	base := testenv.BusyboxImage(b)
	ctx := context.Background()
	pub := NewRemote(anonymous)
	run := func(b *testing.B, repo func(i int) string) {
		for i := 0; i < b.N; i++ {
			img, err := image.Build(ctx, image.Spec{Base: base, Dir: dir, Cmd: []string{"node", "server.js"}})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := pub.Publish(ctx, mustRef(b, reg.Addr+"/"+repo(i)+":1"), img); err != nil {
				b.Fatal(err)
			}
			img.(interface{ Close() error }).Close()
		}
	}
	b.Run("cold", func(b *testing.B) { run(b, func(i int) string { return fmt.Sprintf("bench/cold%d", i) }) })
	b.Run("warm", func(b *testing.B) { run(b, func(int) string { return "bench/warm" }) })
}
