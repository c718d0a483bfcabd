package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/imageref"
)

// LayoutPrefix starts an Image.Ref that names an image in an OCI layout
// directory: "oci-layout:DIR@sha256:…".
const LayoutPrefix = imageref.LayoutPrefix

// imageRef is a parsed driver.Image.Ref.
type imageRef struct {
	layoutDir string      // set for oci-layout refs
	ref       name.Digest // set for registry refs
	digest    v1.Hash
}

func parseImageRef(s string) (imageRef, error) {
	r, err := imageref.Parse(s)
	if err != nil {
		return imageRef{}, err
	}
	if r.IsLayout() {
		return imageRef{layoutDir: r.Layout, digest: r.Digest}, nil
	}
	return imageRef{ref: r.Name(), digest: r.Digest}, nil
}

// OwnedTag is the local tag a driver with image repository repo (see
// WithImageRepo; default OwnedRepo) gives the image with this manifest
// digest ("sha256:…"): repo:sha256-<hex>.
func OwnedTag(repo, digest string) string {
	alg, hex, _ := strings.Cut(digest, ":")
	return repo + ":" + alg + "-" + hex
}

// ownedDigest is the inverse of OwnedTag; ok is false for other references.
func ownedDigest(repo, tag string) (string, bool) {
	rest, ok := strings.CutPrefix(tag, repo+":")
	if !ok {
		return "", false
	}
	alg, hex, ok := strings.Cut(rest, "-")
	if !ok {
		return "", false
	}
	return alg + ":" + hex, true
}

// EnsureImage makes the engine have the image and returns its image ID
// (config digest). It pulls or loads only when the engine lacks it.
func (d *Driver) EnsureImage(ctx context.Context, img driver.Image) (string, error) {
	r, err := parseImageRef(img.Ref)
	if err != nil {
		return "", err
	}
	unlock := d.lockDigest(r.digest.String())
	defer unlock()

	tag := OwnedTag(d.opts.imageRepo, r.digest.String())
	if id, ok, err := d.imageID(ctx, tag); err != nil || ok {
		return id, err
	}
	if r.layoutDir != "" {
		if err := d.loadFromLayout(ctx, r); err != nil {
			return "", err
		}
	} else {
		// Pulled by someone else already: just claim it.
		_, ok, err := d.imageID(ctx, r.ref.String())
		if err != nil {
			return "", err
		}
		if !ok {
			if err := d.fetchRemote(ctx, r, img.Insecure); err != nil {
				return "", err
			}
		}
		if _, ok, _ = d.imageID(ctx, tag); !ok {
			if _, err := d.cli.ImageTag(ctx, client.ImageTagOptions{Source: r.ref.String(), Target: tag}); err != nil {
				return "", fmt.Errorf("tagging %s as %s: %w", r.ref, tag, err)
			}
		}
	}
	id, ok, err := d.imageID(ctx, tag)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("image %s: not in the engine after fetching it", img.Ref)
	}
	return id, nil
}

// imageID inspects ref; ok is false when the engine does not have it.
func (d *Driver) imageID(ctx context.Context, ref string) (id string, ok bool, err error) {
	res, err := d.cli.ImageInspect(ctx, ref)
	if isNotFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("inspecting image %s: %w", ref, err)
	}
	return res.ID, true, nil
}

// lockDigest serialises fetches of one digest; it returns the unlock.
func (d *Driver) lockDigest(digest string) func() {
	d.fetchMu.Lock()
	mu, ok := d.fetching[digest]
	if !ok {
		mu = &sync.Mutex{}
		d.fetching[digest] = mu
	}
	d.fetchMu.Unlock()
	mu.Lock()
	return mu.Unlock
}

// fetchRemote has the engine pull r, or, when the engine would not speak
// plain HTTP to an insecure registry, fetches it here and loads it.
func (d *Driver) fetchRemote(ctx context.Context, r imageRef, insecure bool) error {
	if d.fetchHere || insecure && !d.engineTrusts(ctx, r.ref.RegistryStr()) {
		ref, err := name.NewDigest(r.ref.String(), name.Insecure)
		if err != nil {
			return fmt.Errorf("image %s: %w", r.ref, err)
		}
		img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(d.opts.keychain), remote.WithPlatform(d.platform(ctx)))
		if err != nil {
			return fmt.Errorf("fetching %s: %w", r.ref, err)
		}
		return d.load(ctx, img, r)
	}
	auth, err := d.registryAuth(r.ref.Context().Registry)
	if err != nil {
		return fmt.Errorf("pulling %s: credentials: %w", r.ref, err)
	}
	resp, err := d.cli.ImagePull(ctx, r.ref.String(), client.ImagePullOptions{RegistryAuth: auth})
	if err != nil {
		return fmt.Errorf("pulling %s: %w", r.ref, err)
	}
	if err := resp.Wait(ctx); err != nil {
		return fmt.Errorf("pulling %s: %w", r.ref, err)
	}
	return nil
}

// registryAuth encodes the keychain's credentials for reg as the engine's
// X-Registry-Auth value; "" for anonymous.
func (d *Driver) registryAuth(reg name.Registry) (string, error) {
	a, err := d.opts.keychain.Resolve(reg)
	if err != nil {
		return "", err
	}
	if a == authn.Anonymous {
		return "", nil
	}
	cfg, err := a.Authorization()
	if err != nil {
		return "", err
	}
	if *cfg == (authn.AuthConfig{}) {
		return "", nil
	}
	return authconfig.Encode(registry.AuthConfig{
		Username:      cfg.Username,
		Password:      cfg.Password,
		Auth:          cfg.Auth,
		ServerAddress: reg.RegistryStr(),
		IdentityToken: cfg.IdentityToken,
		RegistryToken: cfg.RegistryToken,
	})
}

// engineTrusts reports whether the engine pulls from host over plain HTTP:
// loopback registries and those in its insecure-registries setting.
func (d *Driver) engineTrusts(ctx context.Context, host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	addr, addrErr := netip.ParseAddr(strings.Trim(h, "[]"))
	if addrErr == nil && addr.IsLoopback() {
		return true
	}
	info, err := d.cli.Info(ctx, client.InfoOptions{})
	if err != nil || info.Info.RegistryConfig == nil {
		return false
	}
	rc := info.Info.RegistryConfig
	if ic, ok := rc.IndexConfigs[host]; ok && !ic.Secure {
		return true
	}
	if addrErr == nil {
		for _, p := range rc.InsecureRegistryCIDRs {
			if p.Contains(addr) {
				return true
			}
		}
	}
	return false
}

// platform is the engine's OS and architecture, for picking an image out of
// a multi-platform index.
func (d *Driver) platform(ctx context.Context) v1.Platform {
	p := v1.Platform{OS: "linux", Architecture: "amd64"}
	if v, err := d.cli.ServerVersion(ctx, client.ServerVersionOptions{}); err == nil {
		if v.Os != "" {
			p.OS = v.Os
		}
		if v.Arch != "" {
			p.Architecture = v.Arch
		}
	}
	return p
}

// loadFromLayout reads the image r.digest from the OCI layout r.layoutDir
// (the platform image when the digest names an index) and loads it.
func (d *Driver) loadFromLayout(ctx context.Context, r imageRef) error {
	fail := func(err error) error {
		return fmt.Errorf("loading %s%s@%s: %w", LayoutPrefix, r.layoutDir, r.digest, err)
	}
	p, err := layout.FromPath(r.layoutDir)
	if err != nil {
		return fail(err)
	}
	raw, err := p.Bytes(r.digest)
	if err != nil {
		return fail(err)
	}
	var head struct {
		MediaType string `json:"mediaType"`
		Manifests []any  `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return fail(fmt.Errorf("reading manifest: %w", err))
	}
	var img v1.Image
	if head.Manifests != nil || strings.Contains(head.MediaType, "index") || strings.Contains(head.MediaType, "manifest.list") {
		idx, err := p.ImageIndex()
		if err != nil {
			return fail(err)
		}
		child, err := idx.ImageIndex(r.digest)
		if err != nil {
			return fail(err)
		}
		im, err := child.IndexManifest()
		if err != nil {
			return fail(err)
		}
		want := d.platform(ctx)
		for _, desc := range im.Manifests {
			if desc.MediaType.IsImage() && (desc.Platform == nil || desc.Platform.Satisfies(want)) {
				if img, err = child.Image(desc.Digest); err != nil {
					return fail(err)
				}
				break
			}
		}
		if img == nil {
			return fail(fmt.Errorf("no image for %s in the index", want))
		}
	} else if img, err = p.Image(r.digest); err != nil {
		return fail(err)
	}
	if err := d.load(ctx, img, r); err != nil {
		return fail(err)
	}
	return nil
}

// load streams img into the engine as a `docker save` tarball tagged
// OwnedTag(imageRepo, r.digest).
func (d *Driver) load(ctx context.Context, img v1.Image, r imageRef) error {
	tag, err := name.NewTag(OwnedTag(d.opts.imageRepo, r.digest.String()))
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(tarball.Write(tag, img, pw))
	}()
	res, err := d.cli.ImageLoad(ctx, pr, client.ImageLoadWithQuiet(true))
	if err != nil {
		pr.CloseWithError(err)
		return fmt.Errorf("ImageLoad: %w", err)
	}
	defer res.Close()
	dec := json.NewDecoder(res)
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			pr.CloseWithError(err)
			return fmt.Errorf("ImageLoad: reading the engine's answer: %w", err)
		}
		if m.Error != nil {
			pr.CloseWithError(errors.New(m.Error.Message))
			return fmt.Errorf("ImageLoad: %s", m.Error.Message)
		}
	}
	// The engine answered after reading the whole tarball; a writer error
	// (a layer blob missing from the layout) shows up as a failed load above.
	_ = pr.Close()
	return nil
}
