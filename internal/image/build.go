// Package image turns a .deploy directory into an OCI image without a Docker
// daemon: one reproducible layer on top of a base image, and a config with
// the entrypoint, environment, port and labels. The same inputs give the same
// digest on any machine.
package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// EntrypointScript is the file name that, found in the .deploy directory,
// makes the image run it before the main process.
const EntrypointScript = "entrypoint.sh"

// ScriptPath is where Build puts an entrypoint script that lives outside the
// .deploy directory (Spec.EntrypointScript).
const ScriptPath = "/.slipway/entrypoint.sh"

// ErrNoShell is wrapped by Build's error when an entrypoint script needs
// /bin/sh and the base image (scratch) has none.
var ErrNoShell = errors.New("an entrypoint script needs /bin/sh in the base image")

// Spec says what to build. Only Dir is required.
type Spec struct {
	// Base is the image to build on; nil means scratch (an empty image).
	Base v1.Image
	// Dir is the .deploy directory that becomes the image's one new layer.
	Dir string
	// WorkDir is where Dir lands in the image and the container's working
	// directory; default DefaultWorkDir (/var/www).
	WorkDir string
	// Entrypoint and Cmd are the main process. Nil inherits the base's; as
	// with a Dockerfile, setting Entrypoint without Cmd clears the base's Cmd.
	Entrypoint, Cmd []string
	// Env is added to the base's environment (same keys are replaced in
	// place, new keys are appended sorted by name).
	Env map[string]string
	// ExposedPort, if non-zero, is declared as PORT/tcp.
	ExposedPort int
	// Labels are merged over the base's labels; see Labels for the standard set.
	Labels map[string]string
	// Created is the image's creation time and every file's mtime; pass
	// SOURCE_DATE_EPOCH or the commit time. Zero means the Unix epoch.
	Created time.Time
	// EntrypointScript is a script, on the host, to run before the main
	// process. Empty means Dir/entrypoint.sh if that exists. A script outside
	// Dir is added to the layer at ScriptPath. See Build for how it runs.
	EntrypointScript string
	// Platform overrides the image's platform; nil means the base's, or
	// linux/GOARCH on scratch. Set it when building on scratch so that
	// builders of other architectures produce the same digest.
	Platform *v1.Platform
}

// Build assembles the image: the base's layers plus one layer made from
// spec.Dir (see Layer), with a config derived from the base's.
//
// With an entrypoint script the image's entrypoint becomes
//
//	/bin/sh -c '<script> && exec "$@"' slipway-entrypoint <main process...>
//
// so the script runs first (directly if executable, respecting its shebang,
// else with /bin/sh), a failure stops the container with the script's exit
// status, and the main process then replaces the shell as PID 1 and gets
// signals. The script runs as a child: variables it exports do not reach the
// main process (use Spec.Env). This needs /bin/sh in the base: on scratch
// Build fails with ErrNoShell; on a shell-less base that is not scratch
// (distroless) the container fails at start with "no such file".
//
// opts tune the layer (WithCompressionLevel, WithTempDir); its placement and
// mtime come from spec.WorkDir and spec.Created.
//
// The new layer's diff ID is computed here; its gzip blob only when needed
// (see DirLayer), so Build is cheap enough to run just to learn whether the
// image changed: compare ConfigName, which covers every diff ID and the config.
func Build(ctx context.Context, spec Spec, opts ...Option) (v1.Image, error) {
	if spec.Dir == "" {
		return nil, errors.New("building image: no .deploy directory given")
	}
	base := spec.Base
	if base == nil {
		base = Scratch()
	}
	workDir := spec.WorkDir
	if workDir == "" {
		workDir = DefaultWorkDir
	}
	created := spec.Created.UTC().Truncate(time.Second)
	if spec.Created.IsZero() {
		created = time.Unix(0, 0).UTC()
	}

	baseManifest, err := base.Manifest()
	if err != nil {
		return nil, fmt.Errorf("building image: reading base manifest: %w", err)
	}
	baseConfig, err := base.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("building image: reading base config: %w", err)
	}
	cfg := baseConfig.DeepCopy()

	manifestType := baseManifest.MediaType
	if manifestType == "" {
		manifestType = types.OCIManifestSchema1
	}
	layerType, configType := types.OCILayer, types.OCIConfigJSON
	if manifestType == types.DockerManifestSchema2 {
		layerType, configType = types.DockerLayer, types.DockerConfigJSON
	} else if manifestType != types.OCIManifestSchema1 {
		return nil, fmt.Errorf("building image: base manifest type %s is not supported", manifestType)
	}

	script, extra, err := findScript(spec, workDir)
	if err != nil {
		return nil, fmt.Errorf("building image: %w", err)
	}
	lopts := append([]Option{WithWorkDir(workDir), WithModTime(created), withMediaType(layerType)}, opts...)
	if extra != "" {
		lopts = append(lopts, WithFile(extra, ScriptPath))
	}
	layer, err := Layer(ctx, spec.Dir, lopts...)
	if err != nil {
		return nil, fmt.Errorf("building image from %s: %w", spec.Dir, err)
	}

	// Platform.
	switch {
	case spec.Platform != nil:
		cfg.OS, cfg.Architecture, cfg.Variant, cfg.OSVersion = spec.Platform.OS, spec.Platform.Architecture, spec.Platform.Variant, spec.Platform.OSVersion
	case cfg.OS == "" && cfg.Architecture == "":
		cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	}

	// Process.
	c := &cfg.Config
	if spec.Entrypoint != nil {
		c.Entrypoint = spec.Entrypoint
		c.Cmd = nil
	}
	if spec.Cmd != nil {
		c.Cmd = spec.Cmd
	}
	if script != "" {
		if len(baseManifest.Layers) == 0 {
			return nil, fmt.Errorf("building image: %s: %w, and the base is scratch; build on a base with a shell (busybox, alpine, debian) or drop the script", script, ErrNoShell)
		}
		main := append(append([]string{}, c.Entrypoint...), c.Cmd...)
		if len(main) == 0 {
			return nil, fmt.Errorf("building image: %s: there is no main process to run after it (no Entrypoint or Cmd here or in the base)", script)
		}
		c.Entrypoint, err = wrapEntrypoint(script, spec.EntrypointScript, spec.Dir, c.Entrypoint)
		if err != nil {
			return nil, fmt.Errorf("building image: %w", err)
		}
	}
	c.WorkingDir = workDir
	c.Env = mergeEnv(c.Env, spec.Env)
	if spec.ExposedPort != 0 {
		if spec.ExposedPort < 0 || spec.ExposedPort > 65535 {
			return nil, fmt.Errorf("building image: exposed port %d out of range", spec.ExposedPort)
		}
		if c.ExposedPorts == nil {
			c.ExposedPorts = map[string]struct{}{}
		}
		c.ExposedPorts[strconv.Itoa(spec.ExposedPort)+"/tcp"] = struct{}{}
	}
	if len(spec.Labels) > 0 && c.Labels == nil {
		c.Labels = map[string]string{}
	}
	for k, v := range spec.Labels {
		c.Labels[k] = v
	}

	// Filesystem and provenance.
	cfg.Created = v1.Time{Time: created}
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, layer.diffID)
	cfg.History = append(cfg.History, v1.History{
		Created:   v1.Time{Time: created},
		CreatedBy: "slipway: COPY .deploy " + workDir,
	})
	// Fields that describe the builder, not the image, would vary by machine.
	cfg.Container, cfg.DockerVersion = "", ""

	rawConfig, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("building image: encoding config: %w", err)
	}
	return &built{
		base:         base,
		baseManifest: baseManifest,
		layer:        layer,
		rawConfig:    rawConfig,
		manifestType: manifestType,
		configType:   configType,
	}, nil
}

// findScript decides which entrypoint script to run, as an image path, and
// which host file (if any) must be added to the layer for it.
func findScript(spec Spec, workDir string) (imagePath, extraHost string, err error) {
	if spec.EntrypointScript == "" {
		p := filepath.Join(spec.Dir, EntrypointScript)
		info, err := os.Lstat(p)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return "", "", nil
		case err != nil:
			return "", "", err
		case !info.Mode().IsRegular():
			return "", "", fmt.Errorf("%s: not a regular file", p)
		}
		return path.Join(workDir, EntrypointScript), "", nil
	}
	abs, err := filepath.Abs(spec.EntrypointScript)
	if err != nil {
		return "", "", err
	}
	dir, err := filepath.Abs(spec.Dir)
	if err != nil {
		return "", "", err
	}
	if rel, err := filepath.Rel(dir, abs); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return path.Join(workDir, filepath.ToSlash(rel)), "", nil
	}
	return ScriptPath, abs, nil
}

// wrapEntrypoint builds the sh -c wrapper; the main process follows it as
// "$@" (the old entrypoint here, the Cmd appended by the runtime).
func wrapEntrypoint(imagePath, hostPath, dir string, entrypoint []string) ([]string, error) {
	if hostPath == "" {
		hostPath = filepath.Join(dir, EntrypointScript)
	}
	info, err := os.Stat(hostPath)
	if err != nil {
		return nil, err
	}
	run := shellQuote(imagePath)
	if info.Mode()&0o111 == 0 {
		run = "/bin/sh " + run
	}
	return append([]string{"/bin/sh", "-c", run + ` && exec "$@"`, "slipway-entrypoint"}, entrypoint...), nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// mergeEnv replaces values of existing keys in place and appends new keys in
// sorted order, so the result does not depend on map iteration.
func mergeEnv(base []string, add map[string]string) []string {
	if len(add) == 0 {
		return base
	}
	out := append([]string{}, base...)
	seen := map[string]bool{}
	for i, kv := range out {
		k, _, _ := strings.Cut(kv, "=")
		if v, ok := add[k]; ok {
			out[i] = k + "=" + v
			seen[k] = true
		}
	}
	keys := make([]string, 0, len(add))
	for k := range add {
		if !seen[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, k+"="+add[k])
	}
	return out
}

// built is the image Build returns. Unlike mutate's images it knows its
// config, and so ConfigName, without compressing the new layer; the
// manifest, which needs the blob digest, is made on first use.
type built struct {
	base         v1.Image
	baseManifest *v1.Manifest
	layer        *DirLayer
	rawConfig    []byte
	manifestType types.MediaType
	configType   types.MediaType

	once        sync.Once
	rawManifest []byte
	manifestErr error
}

var _ v1.Image = (*built)(nil)

func (b *built) MediaType() (types.MediaType, error) { return b.manifestType, nil }

func (b *built) RawConfigFile() ([]byte, error) { return b.rawConfig, nil }

func (b *built) ConfigFile() (*v1.ConfigFile, error) {
	return v1.ParseConfigFile(bytes.NewReader(b.rawConfig))
}

func (b *built) ConfigName() (v1.Hash, error) {
	h, _, err := v1.SHA256(bytes.NewReader(b.rawConfig))
	return h, err
}

func (b *built) Layers() ([]v1.Layer, error) {
	ls, err := b.base.Layers()
	if err != nil {
		return nil, err
	}
	return append(append([]v1.Layer{}, ls...), b.layer), nil
}

func (b *built) RawManifest() ([]byte, error) {
	b.once.Do(func() { b.rawManifest, b.manifestErr = b.makeManifest() })
	return b.rawManifest, b.manifestErr
}

func (b *built) makeManifest() ([]byte, error) {
	cfgName, err := b.ConfigName()
	if err != nil {
		return nil, err
	}
	digest, err := b.layer.Digest()
	if err != nil {
		return nil, err
	}
	size, err := b.layer.Size()
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     b.manifestType,
		Config: v1.Descriptor{
			MediaType: b.configType,
			Size:      int64(len(b.rawConfig)),
			Digest:    cfgName,
		},
	}
	for _, d := range b.baseManifest.Layers {
		m.Layers = append(m.Layers, *d.DeepCopy())
	}
	m.Layers = append(m.Layers, v1.Descriptor{MediaType: b.layer.mediaType, Size: size, Digest: digest})
	return json.Marshal(m)
}

func (b *built) Manifest() (*v1.Manifest, error) {
	raw, err := b.RawManifest()
	if err != nil {
		return nil, err
	}
	return v1.ParseManifest(bytes.NewReader(raw))
}

func (b *built) Digest() (v1.Hash, error) {
	raw, err := b.RawManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	return h, err
}

func (b *built) Size() (int64, error) {
	raw, err := b.RawManifest()
	return int64(len(raw)), err
}

func (b *built) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	if cfgName, _ := b.ConfigName(); h == cfgName {
		return static.NewLayer(b.rawConfig, b.configType), nil
	}
	if d, err := b.layer.Digest(); err == nil && d == h {
		return b.layer, nil
	}
	return b.base.LayerByDigest(h)
}

// Close releases the new layer's spooled blob; the image is unusable after.
func (b *built) Close() error { return b.layer.Close() }

func (b *built) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	if h == b.layer.diffID {
		return b.layer, nil
	}
	return b.base.LayerByDiffID(h)
}
