package swarm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/driver/docker"
)

// envWrapper loads the env secret and execs the real command ("$@"). It is
// the only command line the task has: no value appears on it.
const envWrapper = `. /run/secrets/` + EnvSecretTarget + ` || exit 126; exec "$@"`

// imageCmd is an image's entrypoint and cmd, which the wrapper runs.
type imageCmd struct {
	entrypoint, cmd []string
}

// parseRef checks that an image is a registry digest reference the nodes
// can pull.
func parseRef(img driver.Image) (name.Digest, error) {
	if strings.HasPrefix(img.Ref, docker.LayoutPrefix) {
		return name.Digest{}, fmt.Errorf("image %s is in the embedded image store, which swarm nodes cannot pull from: publish to a registry the nodes reach (--registry)", img.Ref)
	}
	var opts []name.Option
	if img.Insecure {
		opts = append(opts, name.Insecure)
	}
	d, err := name.NewDigest(img.Ref, opts...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("image %q: want a digest reference (host/repo@sha256:…): %w", img.Ref, err)
	}
	return d, nil
}

// command reads the image's entrypoint and cmd from its registry (once per
// digest): the wrapper must exec them itself.
func (d *Driver) command(ctx context.Context, ref name.Digest) (imageCmd, error) {
	d.imgMu.Lock()
	c, ok := d.imgCmds[ref.DigestStr()]
	d.imgMu.Unlock()
	if ok {
		return c, nil
	}
	img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(d.o.keychain),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"}))
	if err != nil {
		return imageCmd{}, fmt.Errorf("reading the image config of %s: %w", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return imageCmd{}, fmt.Errorf("reading the image config of %s: %w", ref, err)
	}
	c = imageCmd{entrypoint: cf.Config.Entrypoint, cmd: cf.Config.Cmd}
	d.imgMu.Lock()
	d.imgCmds[ref.DigestStr()] = c
	d.imgMu.Unlock()
	return c, nil
}

// wrap is the task's command: the wrapper, then argv.
func wrap(argv []string) []string {
	return append([]string{"/bin/sh", "-c", envWrapper, "slipway-env"}, argv...)
}

var envKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// envFile renders env as sh export lines, values single-quoted.
func envFile(env map[string]string) ([]byte, error) {
	keys := make([]string, 0, len(env))
	for k := range env {
		if !envKey.MatchString(k) {
			return nil, fmt.Errorf("env name %q: the swarm runtime needs names of letters, digits and _", k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	// Never empty: Swarm refuses a secret without data.
	b.WriteString("# the instance env, loaded by the task's wrapper\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s='%s'\n", k, strings.ReplaceAll(env[k], "'", `'\''`))
	}
	return []byte(b.String()), nil
}

// createEnvSecret stores env as a Swarm secret and returns the reference a
// task mounts.
func (d *Driver) createEnvSecret(ctx context.Context, env map[string]string, labels map[string]string) (*swarm.SecretReference, error) {
	data, err := envFile(env)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 8)
	rand.Read(b)
	secretName := "slipway-env-" + hex.EncodeToString(b)
	res, err := d.cli.SecretCreate(ctx, client.SecretCreateOptions{Spec: swarm.SecretSpec{
		Annotations: swarm.Annotations{Name: secretName, Labels: labels},
		Data:        data,
	}})
	if err != nil {
		return nil, fmt.Errorf("creating the env secret: %w", err)
	}
	// Readable by the image's user, whoever that is: the env is the app's own.
	return &swarm.SecretReference{
		SecretID: res.ID, SecretName: secretName,
		File: &swarm.SecretReferenceFileTarget{Name: EnvSecretTarget, UID: "0", GID: "0", Mode: 0o444},
	}, nil
}
