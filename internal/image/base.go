package image

import (
	"context"
	"errors"
	"fmt"
	"github.com/slipway-dev/slipway/internal/regpolicy"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Base reference prefixes understood by LoadBase.
const (
	ScratchRef      = "scratch"
	OCILayoutPrefix = "oci-layout:"
	TarballPrefix   = "tarball:"
)

// RefNameAnnotation is the OCI annotation that names an image in a layout.
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// Scratch returns the empty image, with OCI media types.
func Scratch() v1.Image {
	return mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1)
}

// BaseOption configures LoadBase.
type BaseOption func(*baseOptions)

type baseOptions struct {
	keychain  authn.Keychain
	auth      authn.Authenticator
	platform  v1.Platform
	insecure  bool
	transport http.RoundTripper
}

// WithKeychain sets where registry credentials come from. The default is
// authn.DefaultKeychain: the Docker config file and its credential helpers.
func WithKeychain(k authn.Keychain) BaseOption {
	return func(o *baseOptions) { o.keychain = k }
}

// WithAuth sets explicit registry credentials, overriding the keychain.
// The default is none (the keychain decides).
func WithAuth(a authn.Authenticator) BaseOption {
	return func(o *baseOptions) { o.auth = a }
}

// WithPlatform picks the image from a multi-platform index. The default is
// linux/GOARCH.
func WithPlatform(p v1.Platform) BaseOption {
	return func(o *baseOptions) { o.platform = p }
}

// WithInsecure allows plain HTTP to any registry. The default allows it only
// for loopback hosts (127.0.0.0/8, ::1, localhost).
func WithInsecure(insecure bool) BaseOption {
	return func(o *baseOptions) { o.insecure = insecure }
}

// WithBaseTransport sets the HTTP transport for registry bases. The default
// is go-containerregistry's remote.DefaultTransport.
func WithBaseTransport(t http.RoundTripper) BaseOption {
	return func(o *baseOptions) { o.transport = t }
}

// LoadBase resolves a base image reference:
//
//	scratch                      the empty image
//	oci-layout:PATH              the only image in an OCI layout directory
//	oci-layout:PATH@sha256:HEX   the image (or platform image of the index) with that digest
//	oci-layout:PATH:TAG          the image whose ref.name annotation is TAG, or ends in :TAG or /TAG
//	                             (so "repo:tag" finds "registry/repo:tag")
//	tarball:PATH                 a `docker save` archive holding one image
//	anything else                a registry reference, resolved once to a digest
//
// A registry base's layers stay in the registry: they are only read if the
// image is pushed to another registry, and pushing to the same registry
// mounts them across repositories instead of copying. Errors name ref.
func LoadBase(ctx context.Context, ref string, opts ...BaseOption) (v1.Image, error) {
	o := &baseOptions{
		keychain: authn.DefaultKeychain,
		platform: v1.Platform{OS: "linux", Architecture: runtime.GOARCH},
	}
	for _, opt := range opts {
		opt(o)
	}
	img, err := loadBase(ctx, ref, o)
	if err != nil {
		return nil, fmt.Errorf("loading base image %q: %w", ref, err)
	}
	return img, nil
}

func loadBase(ctx context.Context, ref string, o *baseOptions) (v1.Image, error) {
	switch {
	case ref == ScratchRef:
		return Scratch(), nil
	case strings.HasPrefix(ref, OCILayoutPrefix):
		return fromLayout(strings.TrimPrefix(ref, OCILayoutPrefix), o)
	case strings.HasPrefix(ref, TarballPrefix):
		p := strings.TrimPrefix(ref, TarballPrefix)
		if p == "" {
			return nil, errors.New("no path after tarball:")
		}
		return tarball.ImageFromPath(p, nil)
	}
	var nopts []name.Option
	if o.insecure || isLoopback(ref) {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return nil, err
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithPlatform(o.platform)}
	if o.auth != nil {
		ropts = append(ropts, remote.WithAuth(o.auth))
	} else {
		ropts = append(ropts, remote.WithAuthFromKeychain(o.keychain))
	}
	inner := o.transport
	if inner == nil {
		inner = remote.DefaultTransport
	}
	ropts = append(ropts, remote.WithTransport(regpolicy.Transport(inner, o.insecure)))
	return remote.Image(r, ropts...)
}

// fromLayout picks one image out of an OCI layout directory.
func fromLayout(spec string, o *baseOptions) (v1.Image, error) {
	dir, digest, tag := spec, "", ""
	if i := strings.LastIndex(spec, "@"); i >= 0 {
		dir, digest = spec[:i], spec[i+1:]
	} else if !isLayoutDir(spec) {
		// PATH:TAG, where TAG may itself hold ':' and '/' (repo:tag):
		// the path is the shortest prefix that is a layout directory.
		for i := 0; i < len(spec); i++ {
			if spec[i] == ':' && isLayoutDir(spec[:i]) {
				dir, tag = spec[:i], spec[i+1:]
				break
			}
		}
	}
	if dir == "" {
		return nil, errors.New("no path after oci-layout:")
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var want v1.Hash
	if digest != "" {
		if want, err = v1.NewHash(digest); err != nil {
			return nil, err
		}
	}
	var found []v1.Descriptor
	var names []string
	for _, d := range im.Manifests {
		n := d.Annotations[RefNameAnnotation]
		if n != "" {
			names = append(names, n)
		}
		switch {
		case digest != "" && d.Digest == want,
			tag != "" && (n == tag || strings.HasSuffix(n, ":"+tag) || strings.HasSuffix(n, "/"+tag)),
			digest == "" && tag == "":
			found = append(found, d)
		}
	}
	sort.Strings(names)
	switch {
	case len(found) == 0 && digest != "":
		// Maybe a platform image inside one of the indexes.
		return p.Image(want)
	case len(found) == 0:
		return nil, fmt.Errorf("no image tagged %q in %s (it has: %s)", tag, dir, strings.Join(names, ", "))
	case len(found) > 1:
		return nil, fmt.Errorf("%d images match in %s; name one with @sha256:... or :TAG (it has: %s)", len(found), dir, strings.Join(names, ", "))
	}
	d := found[0]
	if d.MediaType.IsIndex() {
		child, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, err
		}
		return platformImage(child, o.platform)
	}
	return idx.Image(d.Digest)
}

func isLayoutDir(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "index.json"))
	return err == nil
}

func platformImage(idx v1.ImageIndex, want v1.Platform) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.Satisfies(want) && d.MediaType.IsImage() {
			return idx.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("no image for platform %s in the index", want.String())
}

func isLoopback(ref string) bool { return regpolicy.IsLoopback(ref) }
