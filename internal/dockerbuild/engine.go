package dockerbuild

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"
)

// Request is one Dockerfile build.
type Request struct {
	Context *Context
	Target  string
	Args    map[string]string
	// Secrets are served to `RUN --mount=type=secret` through the build's
	// session: in memory, never in the request, a file or a layer.
	Secrets map[string][]byte
	// Labels are set in the image config.
	Labels map[string]string
	// Tag names the result in the engine; keeping it keeps the image's
	// layers (and BuildKit's cache of them) between builds.
	Tag string
	// Line receives the build's output, one line at a time.
	Line func(string)
}

// Engine builds with a Docker Engine's build API: BuildKit with a session
// (for secret mounts), the engine's own layer cache kept between builds.
type Engine struct {
	cli *client.Client
}

// Dial connects to the engine at host (unix://, tcp://; "" reads
// DOCKER_HOST, else the default socket) and checks that it answers.
func Dial(ctx context.Context, host string) (*Engine, error) {
	opts := []client.Opt{client.FromEnv}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker engine client: %w", err)
	}
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		return nil, fmt.Errorf("pinging the docker engine: %w", err)
	}
	return &Engine{cli: cli}, nil
}

// Close releases the client.
func (e *Engine) Close() error { return e.cli.Close() }

// BaseIDs returns, for each base image the engine has, its image ID: a base
// rebuilt under the same tag then changes the build's fingerprint. A base
// the engine lacks (it will pull it) is "".
func (e *Engine) BaseIDs(ctx context.Context, bases []string) ([]string, error) {
	out := make([]string, len(bases))
	for i, b := range bases {
		res, err := e.cli.ImageInspect(ctx, b)
		if cerrdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("inspecting base image %s: %w", b, err)
		}
		out[i] = res.ID
	}
	return out, nil
}

// Build runs the build and returns the image ID.
func (e *Engine) Build(ctx context.Context, r Request) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sess, err := e.session(ctx, r.Secrets)
	if err != nil {
		return "", err
	}
	defer sess.Close()

	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(r.Context.WriteTar(pw)) }()
	defer pr.Close()
	args := map[string]*string{}
	for k, v := range r.Args {
		args[k] = &v
	}
	res, err := e.cli.ImageBuild(ctx, pr, client.ImageBuildOptions{
		Version:    build.BuilderBuildKit,
		SessionID:  sess.ID(),
		Dockerfile: r.Context.Dockerfile,
		Target:     r.Target,
		BuildArgs:  args,
		Labels:     r.Labels,
		Tags:       []string{r.Tag},
		Remove:     true,
	})
	if err != nil {
		return "", fmt.Errorf("starting the build: %w", err)
	}
	defer res.Body.Close()
	id, err := readStream(res.Body, r.Line)
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", errors.New("the engine reported no image ID")
	}
	return id, nil
}

// session starts a BuildKit session serving secrets over a connection the
// engine's /session endpoint hijacks.
func (e *Engine) session(ctx context.Context, secrets map[string][]byte) (*session.Session, error) {
	key := make([]byte, 16)
	rand.Read(key)
	sess, err := session.NewSession(ctx, hex.EncodeToString(key))
	if err != nil {
		return nil, fmt.Errorf("starting a build session: %w", err)
	}
	if secrets == nil {
		secrets = map[string][]byte{}
	}
	sess.Allow(secretsprovider.FromMap(secrets))
	go sess.Run(ctx, func(ctx context.Context, proto string, meta map[string][]string) (net.Conn, error) {
		return e.cli.DialHijack(ctx, "/session", proto, meta)
	})
	return sess, nil
}

// Export saves the image from the engine into a file under dir and returns
// it as a v1.Image; remove deletes the file once the image is published.
func (e *Engine) Export(ctx context.Context, id, dir string) (img v1.Image, remove func(), err error) {
	f, err := os.CreateTemp(dir, "dockerbuild-*.tar")
	if err != nil {
		return nil, nil, fmt.Errorf("exporting the image: %w", err)
	}
	remove = func() { os.Remove(f.Name()) }
	defer func() {
		if err != nil {
			remove()
		}
	}()
	rc, err := e.cli.ImageSave(ctx, []string{id})
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("exporting the image from the engine: %w", err)
	}
	_, err = io.Copy(f, rc)
	rc.Close()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, nil, fmt.Errorf("exporting the image from the engine: %w", err)
	}
	img, err = tarball.ImageFromPath(f.Name(), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the exported image: %w", err)
	}
	return img, remove, nil
}

// message is one line of the engine's build stream.
type message struct {
	Stream      string                    `json:"stream"`
	Error       string                    `json:"error"`
	ErrorDetail *struct{ Message string } `json:"errorDetail"`
	ID          string                    `json:"id"`
	Aux         json.RawMessage           `json:"aux"`
}

// readStream follows the build's JSON stream to its end, passing output to
// line, and returns the built image's ID or the build's error.
func readStream(r io.Reader, line func(string)) (string, error) {
	if line == nil {
		line = func(string) {}
	}
	p := &progress{line: line}
	dec := json.NewDecoder(r)
	var id string
	for {
		var m message
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			return "", fmt.Errorf("reading the build's output: %w", err)
		}
		switch {
		case m.ErrorDetail != nil && m.ErrorDetail.Message != "":
			return "", errors.New(strings.TrimSpace(m.ErrorDetail.Message))
		case m.Error != "":
			return "", errors.New(strings.TrimSpace(m.Error))
		case m.ID == "moby.buildkit.trace":
			p.trace(m.Aux)
		case m.ID == "moby.image.id":
			var aux struct{ ID string }
			if json.Unmarshal(m.Aux, &aux) == nil {
				id = aux.ID
			}
		case m.Stream != "":
			for _, l := range strings.Split(strings.TrimRight(m.Stream, "\n"), "\n") {
				line(l)
			}
		case len(m.Aux) > 0:
			var aux struct{ ID string }
			if json.Unmarshal(m.Aux, &aux) == nil && aux.ID != "" {
				id = aux.ID
			}
		}
	}
	p.flush()
	return id, nil
}
