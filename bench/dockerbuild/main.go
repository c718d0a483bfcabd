// Command dockerbuild benchmarks Slipway's Dockerfile builds against the
// docker CLI on the same Dockerfile, engine and kind of registry, side by
// side in one run:
//
//   - slipway:  pipeline.Build (compose, context with .dockerignore, the
//     engine's BuildKit with a session, export, push with
//     go-containerregistry, commit and fingerprint tags);
//   - legacy:   DOCKER_BUILDKIT=0 docker build -t REG/... && docker push;
//   - buildkit: DOCKER_BUILDKIT=1 docker build ... && docker push, when the
//     docker CLI has its buildx plugin (-buildx names a docker-buildx binary
//     to use from a temporary DOCKER_CONFIG; none is installed here).
//
// Cold: each side builds a context with its own nonce file (so no side
// reuses another's layer cache; the base image is local to the engine) and
// pushes to its own fresh registry. Warm: each side runs again with nothing
// changed. It prints each run and the ratios slipway/peer with the goals
// (cold <= 1.0x, warm <= 0.2x).
//
//	go run ./bench/dockerbuild [-base IMAGE] [-files 400] [-mb 24] [-rounds 1] [-buildx PATH] [-keep]
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/benchreg"
	"github.com/slipway-dev/slipway/internal/config"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/registry"
)

type options struct {
	base   string
	files  int
	mb     int
	rounds int
	buildx string
	keep   bool
}

func main() {
	var o options
	flag.StringVar(&o.base, "base", envOr("SLIPWAY_BUSYBOX_IMAGE", "slipway-ci/busybox:latest"), "base image in the engine (FROM); no hub is reachable")
	flag.IntVar(&o.files, "files", 400, "source files in the context")
	flag.IntVar(&o.mb, "mb", 24, "MiB of incompressible data across the context's files")
	flag.IntVar(&o.rounds, "rounds", 1, "cold+warm rounds")
	flag.StringVar(&o.buildx, "buildx", "", "a docker-buildx plugin binary for the BuildKit peer (default: the CLI's own, if any)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work dir")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench/dockerbuild:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// dockerfile is multi-stage: the build stage copies the sources and makes
// an artifact; the runtime stage gets the artifact and the sources.
const dockerfile = `FROM %[1]s AS build
COPY nonce.txt /nonce.txt
COPY src /src
RUN mkdir -p /out && cat /nonce.txt /src/*/*.dat | sha256sum > /out/sum.txt && dd if=/dev/urandom of=/out/blob.bin bs=1M count=8 2>/dev/null
FROM %[1]s AS runtime
COPY --from=build /out /app/out
COPY src /app/src
CMD ["sh", "-c", "exec httpd -f -p ${PORT:-8080} -h /app"]
`

// side is one builder being compared.
type side struct {
	name string
	dir  string // its own copy of the project (own nonce)
	env  []string
	reg  *benchreg.Registry
	cold []time.Duration
	warm []time.Duration
}

func run(o options) error {
	ctx := context.Background()
	work, err := os.MkdirTemp("", "slipway-bench-dockerbuild-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(work)
	}
	ver, _ := exec.Command("docker", "version", "--format", "engine {{.Server.Version}} (API {{.Server.APIVersion}}), CLI {{.Client.Version}}").Output()
	fmt.Printf("machine: %d cores, %s; docker %s", runtime.NumCPU(), runtime.GOOS+"/"+runtime.GOARCH, ver)
	fmt.Printf("workload: %d files, %d MiB incompressible, multi-stage Dockerfile (8 MiB RUN artifact), base %s\n", o.files, o.mb, o.base)
	sides := []*side{{name: "slipway"}, {name: "legacy", env: []string{"DOCKER_BUILDKIT=0"}}}
	if env, why := buildkitEnv(work, o.buildx); why == "" {
		sides = append(sides, &side{name: "buildkit", env: env})
	} else {
		fmt.Printf("buildkit peer: skipped (%s)\n", why)
	}
	for _, s := range sides {
		s.dir = filepath.Join(work, s.name)
		if err := writeProject(s.dir, o); err != nil {
			return err
		}
	}
	var tags []string
	defer func() {
		for _, t := range tags {
			exec.Command("docker", "rmi", "-f", t).Run()
		}
	}()
	for r := 0; r < o.rounds; r++ {
		for _, s := range sides {
			if s.reg != nil {
				s.reg.Stop()
			}
			if s.reg, err = benchreg.Start(ctx, filepath.Join(work, fmt.Sprintf("reg-%s-%d", s.name, r))); err != nil {
				return err
			}
			defer s.reg.Stop()
			if err := newNonce(s.dir); err != nil {
				return err
			}
		}
		for _, phase := range []string{"cold", "warm"} {
			for _, s := range sides {
				d, tag, err := s.once(ctx)
				if err != nil {
					return fmt.Errorf("%s %s: %w", s.name, phase, err)
				}
				if tag != "" {
					tags = append(tags, tag)
				}
				fmt.Printf("round %d  %-4s  %-8s  %7.2fs\n", r+1, phase, s.name, d.Seconds())
				if phase == "cold" {
					s.cold = append(s.cold, d)
				} else {
					s.warm = append(s.warm, d)
				}
			}
		}
	}
	report(sides)
	return nil
}

func report(sides []*side) {
	us := sides[0]
	fmt.Println()
	fmt.Printf("%-10s %10s %10s\n", "median", "cold", "warm")
	for _, s := range sides {
		fmt.Printf("%-10s %9.2fs %9.2fs\n", s.name, median(s.cold).Seconds(), median(s.warm).Seconds())
	}
	for _, peer := range sides[1:] {
		c := median(us.cold).Seconds() / median(peer.cold).Seconds()
		w := median(us.warm).Seconds() / median(peer.warm).Seconds()
		fmt.Printf("slipway/%-8s cold %.2fx (goal <= 1.0x: %s)   warm no-change %.2fx (goal <= 0.2x: %s)\n",
			peer.name, c, verdict(c <= 1.0), w, verdict(w <= 0.2))
	}
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return time.Duration(math.MaxInt64)
	}
	s := append([]time.Duration(nil), ds...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// once runs the side's build and push, returning the time and an engine
// tag to remove at the end.
func (s *side) once(ctx context.Context) (time.Duration, string, error) {
	if s.name == "slipway" {
		return s.slipway(ctx)
	}
	tag := s.reg.Addr + "/bench/web:" + s.name
	app := filepath.Join(s.dir, "apps", "web")
	start := time.Now()
	for _, args := range [][]string{{"build", "-q", "-t", tag, app}, {"push", "-q", tag}} {
		cmd := exec.CommandContext(ctx, "docker", args...)
		cmd.Env = append(os.Environ(), s.env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, tag, fmt.Errorf("docker %s: %v\n%s", args[0], err, out)
		}
	}
	return time.Since(start), tag, nil
}

func (s *side) slipway(ctx context.Context) (time.Duration, string, error) {
	start := time.Now()
	cfg, err := config.Load(s.dir, "")
	if err != nil {
		return 0, "", err
	}
	store := pipeline.RemoteStore{Remote: registry.NewRemote(), Registry: s.reg.Addr}
	res, err := pipeline.Build(ctx, pipeline.BuildOptions{Config: cfg, Stores: []string{"shop"}, Store: store, Jobs: 2,
		CacheDir: filepath.Join(s.dir, ".slipway", "cache"), Log: io.Discard})
	if err != nil {
		return 0, "", err
	}
	d := time.Since(start)
	for _, im := range res.Images {
		if im.Err != nil {
			return 0, "", im.Err
		}
		var phases []string
		for _, p := range im.Phases {
			phases = append(phases, fmt.Sprintf("%s %.2fs", p.Name, float64(p.Millis)/1000))
		}
		if im.UpToDate {
			phases = []string{"up to date: nothing built or written"}
		}
		fmt.Printf("          slipway phases: %s\n", strings.Join(phases, ", "))
	}
	return d, "slipway-build/bench/web:shop", nil
}

// buildkitEnv returns the env that makes `docker build` use BuildKit, or
// why it cannot: docker CLIs since 23 need the buildx plugin for it.
func buildkitEnv(work, buildx string) ([]string, string) {
	env := []string{"DOCKER_BUILDKIT=1"}
	if buildx != "" {
		cfg := filepath.Join(work, "docker-config")
		plug := filepath.Join(cfg, "cli-plugins", "docker-buildx")
		if err := os.MkdirAll(filepath.Dir(plug), 0o755); err != nil {
			return nil, err.Error()
		}
		if err := os.Symlink(buildx, plug); err != nil {
			return nil, err.Error()
		}
		env = append(env, "DOCKER_CONFIG="+cfg)
	}
	cmd := exec.Command("docker", "buildx", "version")
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, "the docker CLI has no buildx plugin; pass -buildx PATH: " + strings.TrimSpace(firstLine(string(out)))
	}
	return env, ""
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// writeProject writes a one-store Slipway project around the Dockerfile app.
func writeProject(dir string, o options) error {
	files := map[string][]byte{
		"slipway.yaml": []byte("project: bench\napps:\n  - {id: web, path: apps/web, framework: shop, port: 8080, build: {target: runtime}}\n" +
			"stores:\n  shop: {projectName: bench, region: local, framework: shop}\n"),
		"apps/web/Dockerfile":    []byte(fmt.Sprintf(dockerfile, o.base)),
		"apps/web/.dockerignore": []byte("*.md\n"),
		"apps/web/README.md":     []byte("not in the context\n"),
		"apps/stores/shop/.keep": nil,
		".gitignore":             []byte(".out/\n.slipway/\n"),
	}
	per := o.mb << 20 / max(1, o.files)
	for i := 0; i < o.files; i++ {
		b := make([]byte, per)
		rand.Read(b)
		files[fmt.Sprintf("apps/web/src/d%02d/f%04d.dat", i%20, i)] = b
	}
	for p, b := range files {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	return git(dir, "init", "-q")
}

// newNonce changes the side's context so that its next build is cold, and commits.
func newNonce(dir string) error {
	b := make([]byte, 16)
	rand.Read(b)
	if err := os.WriteFile(filepath.Join(dir, "apps/web/nonce.txt"), []byte(hex.EncodeToString(b)+"\n"), 0o644); err != nil {
		return err
	}
	if err := git(dir, "add", "-A"); err != nil {
		return err
	}
	return git(dir, "commit", "-q", "-m", "nonce")
}

func git(dir string, args ...string) error {
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.email=b@b", "-c", "user.name=bench", "-c", "commit.gpgsign=false"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %v: %v\n%s", args, err, out)
	}
	return nil
}
