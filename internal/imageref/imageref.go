// Package imageref is the one typed reference to an image a runtime runs:
// parsed once, printed one way, fetched through one path with one plain-HTTP
// rule. It is either a digest in an OCI layout directory (serve's own image
// store) or a digest in a registry.
package imageref

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-dev/slipway/internal/regpolicy"
)

// LayoutPrefix starts the text form of an image in an OCI layout directory:
// "oci-layout:DIR@sha256:…".
const LayoutPrefix = "oci-layout:"

// Ref is an image pinned by digest, in a layout directory or a registry.
type Ref struct {
	// Layout is the OCI layout directory; "" for a registry image.
	Layout string
	// Repo is the registry repository; zero for a layout image.
	Repo name.Repository
	// Digest is the manifest digest.
	Digest v1.Hash
}

// InLayout is the image with digest in the layout at dir.
func InLayout(dir string, digest v1.Hash) Ref { return Ref{Layout: dir, Digest: digest} }

// InRegistry is the image d names.
func InRegistry(d name.Digest) (Ref, error) {
	h, err := v1.NewHash(d.DigestStr())
	if err != nil {
		return Ref{}, fmt.Errorf("image %s: %w", d, err)
	}
	return Ref{Repo: d.Context(), Digest: h}, nil
}

// Parse reads the text form: "oci-layout:DIR@sha256:…" or "host/repo@sha256:…".
func Parse(s string) (Ref, error) {
	if rest, ok := strings.CutPrefix(s, LayoutPrefix); ok {
		i := strings.LastIndex(rest, "@")
		if i <= 0 {
			return Ref{}, fmt.Errorf("image %q: want %sDIR@sha256:…", s, LayoutPrefix)
		}
		h, err := v1.NewHash(rest[i+1:])
		if err != nil {
			return Ref{}, fmt.Errorf("image %q: %w", s, err)
		}
		return Ref{Layout: rest[:i], Digest: h}, nil
	}
	var opts []name.Option
	if regpolicy.IsLoopback(s) {
		opts = append(opts, name.Insecure) // the plain-HTTP rule: loopback only
	}
	d, err := name.NewDigest(s, opts...)
	if err != nil {
		return Ref{}, fmt.Errorf("image %q: want a digest reference (host/repo@sha256:…): %w", s, err)
	}
	return InRegistry(d)
}

// LayoutString is the text form of the image with digest ("sha256:…") in the layout at dir.
func LayoutString(dir, digest string) (string, error) {
	h, err := v1.NewHash(digest)
	if err != nil {
		return "", fmt.Errorf("image digest %q: %w", digest, err)
	}
	return InLayout(dir, h).String(), nil
}

// IsLayout reports whether the image lives in a layout directory.
func (r Ref) IsLayout() bool { return r.Layout != "" }

// Name is the registry digest reference; zero for a layout image.
func (r Ref) Name() name.Digest { return r.Repo.Digest(r.Digest.String()) }

// String is the text form Parse reads.
func (r Ref) String() string {
	if r.IsLayout() {
		return LayoutPrefix + r.Layout + "@" + r.Digest.String()
	}
	return r.Name().String()
}

// FetchOptions tune Image.
type FetchOptions struct {
	// Insecure allows plain HTTP to a registry that is not on loopback.
	Insecure bool
	// Keychain resolves registry credentials; default authn.DefaultKeychain.
	Keychain authn.Keychain
	// Transport under the plain-HTTP rule; default remote.DefaultTransport.
	Transport http.RoundTripper
	// Platform picked from an index; default linux on this architecture.
	Platform *v1.Platform
}

// Image opens the image: from its layout, or from its registry by digest,
// plain HTTP only to loopback unless Insecure.
func (r Ref) Image(ctx context.Context, o FetchOptions) (v1.Image, error) {
	if r.IsLayout() {
		p, err := layout.FromPath(r.Layout)
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", r, err)
		}
		img, err := p.Image(r.Digest)
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", r, err)
		}
		return img, nil
	}
	if r.Repo.RegistryStr() == "" {
		return nil, errors.New("an empty image reference")
	}
	ref := r.Name()
	if o.Insecure {
		d, err := name.NewDigest(ref.String(), name.Insecure)
		if err != nil {
			return nil, err
		}
		ref = d
	}
	if o.Keychain == nil {
		o.Keychain = authn.DefaultKeychain
	}
	if o.Transport == nil {
		o.Transport = remote.DefaultTransport
	}
	if o.Platform == nil {
		o.Platform = &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	return remote.Image(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(o.Keychain),
		remote.WithPlatform(*o.Platform), remote.WithTransport(regpolicy.Transport(o.Transport, o.Insecure)))
}
