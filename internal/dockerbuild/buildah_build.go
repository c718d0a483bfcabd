package dockerbuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/slipway-dev/slipway/internal/image"
)

// BaseIDs implements Builder. A base buildah's storage lacks is pulled
// first: the ID then names the exact image the build will use, and the
// next build's fingerprint is the same (the engine instead reports "" for
// a base it lacks and pulls it during the build).
func (b *Buildah) BaseIDs(ctx context.Context, bases []string) ([]string, error) {
	out := make([]string, len(bases))
	for i, base := range bases {
		id, err := b.imageID(ctx, base)
		if errors.Is(err, errNoImage) {
			if err = b.pull(ctx, base); err == nil {
				id, err = b.imageID(ctx, base)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("base image %s: %w", base, err)
		}
		out[i] = id
	}
	return out, nil
}

var errNoImage = errors.New("not in buildah's storage")

func (b *Buildah) imageID(ctx context.Context, ref string) (string, error) {
	cmd, err := b.command(ctx, []string{ref}, "inspect", "--type", "image", "--format", "{{.FromImageID}}", ref)
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if strings.Contains(stderr.String(), "image not known") {
			return "", errNoImage
		}
		return "", fmt.Errorf("buildah inspect: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

func (b *Buildah) pull(ctx context.Context, ref string) error {
	cmd, err := b.command(ctx, []string{ref}, "pull", "--quiet", ref)
	if err != nil {
		return err
	}
	if err := run(cmd, nil); err != nil {
		return fmt.Errorf("buildah pull: %w", err)
	}
	return nil
}

// Build implements Builder: `buildah bud --layers` of a copy of the
// context (the files NewContext kept, with its fixed mtimes, so the
// layer cache and .dockerignore work as for the engine), secrets mounted
// from 0600 files removed when it ends.
func (b *Buildah) Build(ctx context.Context, r Request) (string, error) {
	work, err := os.MkdirTemp(b.tmp(), "build-")
	if err != nil {
		return "", fmt.Errorf("buildah build dir: %w", err)
	}
	defer os.RemoveAll(work)
	ctxDir := filepath.Join(work, "context")
	if err := r.Context.CopyTo(ctxDir); err != nil {
		return "", err
	}
	secretArgs, cleanup, err := writeSecrets(r.Secrets, b.dir, b.secretsIn)
	if err != nil {
		return "", err
	}
	defer cleanup()
	iid := filepath.Join(work, "iid")
	args := []string{"bud", "--layers", "--force-rm", "--isolation", "chroot", "--format", "docker",
		"--iidfile", iid, "-f", filepath.Join(ctxDir, filepath.FromSlash(r.Context.Dockerfile)), "-t", r.Tag}
	if r.Target != "" {
		args = append(args, "--target", r.Target)
	}
	for _, k := range sortedKeys(r.Args) {
		args = append(args, "--build-arg", k+"="+r.Args[k])
	}
	for _, k := range labelOrder(r.Labels) {
		args = append(args, "--label", k+"="+r.Labels[k])
	}
	args = append(append(args, secretArgs...), ctxDir)
	df, err := ParseDockerfile(filepath.Join(ctxDir, filepath.FromSlash(r.Context.Dockerfile)))
	if err != nil {
		return "", err
	}
	cmd, err := b.command(ctx, df.Bases, args...)
	if err != nil {
		return "", err
	}
	// buildah 1.28 reads a secret from the environment variable named like
	// its id, when there is one, rather than from src (and mounts it
	// empty): the build's environment has none of them.
	cmd.Env = slices.DeleteFunc(cmd.Env, func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		_, isSecret := r.Secrets[k]
		return isSecret
	})
	step := ""
	line := r.Line
	if line == nil {
		line = func(string) {}
	}
	if err := run(cmd, func(s string) {
		if strings.Contains(s, "STEP ") && !strings.HasPrefix(s, "Error") {
			step = s
		}
		line(s)
	}); err != nil {
		// buildah names the instruction; the step line adds where it is
		// ("[1/2] STEP 4/4").
		if pos, _, ok := strings.Cut(step, ": "); ok {
			return "", fmt.Errorf("buildah bud, %s: %w", pos, err)
		}
		return "", fmt.Errorf("buildah bud: %w", err)
	}
	id, err := os.ReadFile(iid)
	if err != nil || len(bytes.TrimSpace(id)) == 0 {
		return "", fmt.Errorf("buildah bud wrote no image ID: %v", err)
	}
	return strings.TrimSpace(string(id)), nil
}

// writeSecrets writes each secret to a 0600 file in a 0700 directory (on
// /dev/shm, memory, when there is one, else under dir) and returns the
// --secret flags naming the files, never the values, and a cleanup that
// removes them.
func writeSecrets(secrets map[string][]byte, dir, parent string) (args []string, cleanup func(), err error) {
	if len(secrets) == 0 {
		return nil, func() {}, nil
	}
	if parent == "" {
		parent = dir
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
			parent = "/dev/shm"
		}
	}
	prefix := secretDirPrefix + strconv.Itoa(os.Getpid()) + "-"
	sweepSecrets(parent)
	sd, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		sweepSecrets(dir)
		if sd, err = os.MkdirTemp(dir, prefix); err != nil {
			return nil, nil, fmt.Errorf("build secrets: %w", err)
		}
	}
	cleanup = func() { os.RemoveAll(sd) }
	for _, id := range sortedKeys(secrets) {
		p := filepath.Join(sd, id)
		if err := os.WriteFile(p, secrets[id], 0o600); err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("build secret %s: %w", id, err)
		}
		args = append(args, "--secret", "id="+id+",src="+p)
	}
	return args, cleanup, nil
}

// secretDirPrefix starts the name of a build's secrets directory, followed
// by the pid of the process that wrote it.
const secretDirPrefix = "slipway-secrets-"

// sweepSecrets removes the secrets directories in parent whose process is
// gone: a build killed before its cleanup ran leaves them behind, and
// /dev/shm keeps them until the machine restarts.
func sweepSecrets(parent string) {
	olds, _ := filepath.Glob(filepath.Join(parent, secretDirPrefix+"*-*"))
	for _, o := range olds {
		pidStr, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(o), secretDirPrefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(o)
		}
	}
}

// Export implements Builder: the image as a docker-archive (layers
// uncompressed, as the engine's save gives them) for Compress.
func (b *Buildah) Export(ctx context.Context, id, dir string) (img v1.Image, remove func(), err error) {
	f, err := os.CreateTemp(dir, "buildah-*.tar")
	if err != nil {
		return nil, nil, fmt.Errorf("exporting the image: %w", err)
	}
	f.Close()
	remove = func() { os.Remove(f.Name()) }
	os.Remove(f.Name()) // buildah refuses to overwrite an archive
	cmd, err := b.command(ctx, nil, "push", "--quiet", id, "docker-archive:"+f.Name())
	if err != nil {
		return nil, nil, err
	}
	if err := run(cmd, nil); err != nil {
		remove()
		return nil, nil, fmt.Errorf("exporting the image from buildah: %w", err)
	}
	img, err = tarball.ImageFromPath(f.Name(), nil)
	if err != nil {
		remove()
		return nil, nil, fmt.Errorf("reading the exported image: %w", err)
	}
	return img, remove, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// labelOrder puts the project, store and app labels first: buildah 1.28
// makes an image per --label, in order, and PruneBuilds finds an earlier
// build's images by those three labels, so all but the first two carry them.
func labelOrder(labels map[string]string) []string {
	first := []string{image.LabelProject, image.LabelStore, image.LabelApp}
	var keys []string
	for _, k := range first {
		if _, ok := labels[k]; ok {
			keys = append(keys, k)
		}
	}
	for _, k := range sortedKeys(labels) {
		if !slices.Contains(first, k) {
			keys = append(keys, k)
		}
	}
	return keys
}
