package server

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-dev/slipway/internal/api"
	"github.com/slipway-dev/slipway/internal/imageref"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/registry"
)

// resolveImage turns a pushed image reference into what the runtime runs,
// checking it on the way: an image of serve's own store must be in it (a tag
// must point at the digest given); a registry image must come from an allowed
// registry and its tag resolve to the digest given. The digest returned is
// the one recorded and the one run, whatever the caller claimed.
func (s *Server) resolveImage(ctx context.Context, field string, im api.ImageRef, l api.Limits) (pipeline.BuiltImage, error) {
	if err := api.CheckImageRef(field, im, l); err != nil {
		return pipeline.BuiltImage{}, err
	}
	ref, err := name.ParseReference(im.Ref, name.StrictValidation)
	if err != nil {
		return pipeline.BuiltImage{}, api.Fieldf(field+".ref", "%v", err)
	}
	digest, err := s.lookupDigest(ctx, ref)
	if err != nil {
		return pipeline.BuiltImage{}, api.Fieldf(field+".ref", "%v", err)
	}
	if im.Digest != "" && digest != im.Digest {
		return pipeline.BuiltImage{}, api.Fieldf(field+".digest", "%s resolves to %s, not %s", im.Ref, digest, im.Digest)
	}
	if d, ok := ref.(name.Digest); ok && im.Digest == "" {
		digest = d.DigestStr()
	}
	out := pipeline.BuiltImage{Store: im.Store, App: im.App, Ref: ref.String(), Digest: digest}
	// One typed reference for what the runtime runs, printed one way.
	var run imageref.Ref
	h, err := v1.NewHash(digest)
	if err != nil {
		return pipeline.BuiltImage{}, api.Fieldf(field+".digest", "%v", err)
	}
	if ref.Context().RegistryStr() == api.LayoutHost {
		run = imageref.InLayout(s.Images.Dir(), h)
	} else {
		run = imageref.Ref{Repo: ref.Context(), Digest: h}
	}
	out.DriverRef = run.String()
	return out, nil
}

// lookupDigest resolves ref in serve's own store or its registry.
func (s *Server) lookupDigest(ctx context.Context, ref name.Reference) (string, error) {
	if ref.Context().RegistryStr() == api.LayoutHost {
		if d, ok := ref.(name.Digest); ok {
			_, found, err := s.Images.Exists(ctx, d)
			if err != nil {
				return "", err
			}
			if !found {
				return "", fmt.Errorf("%s is not in serve's image store", d.DigestStr())
			}
			return d.DigestStr(), nil
		}
		h, found, err := s.Images.Exists(ctx, ref)
		if err != nil {
			return "", err
		}
		if !found {
			return "", fmt.Errorf("%s is not in serve's image store", ref)
		}
		return h.String(), nil
	}
	h, found, err := registry.NewRemote(registry.WithTimeout(s.o.resolveTimeout())).Exists(ctx, ref)
	if err != nil {
		return "", err
	}
	if !found {
		return "", fmt.Errorf("%s is not in its registry", ref)
	}
	if d, ok := ref.(name.Digest); ok && h.String() != d.DigestStr() {
		return "", fmt.Errorf("the registry answers %s for %s", h, d.DigestStr())
	}
	return h.String(), nil
}

// checkSpec validates a deploy spec sent whole (POST /v1/deploy): the same
// bounds as a job, the store in serve's config when serve has one, and every
// image resolved here: the runtime reference a caller sent is never used.
func (s *Server) checkSpec(ctx context.Context, req *pipeline.DeployRequest) error {
	var allow []string
	cfg, err := s.config()
	if err == nil {
		st := cfg.Store(req.Store)
		if st == nil || !st.Deployable() {
			return api.Fieldf("store", "no deployable store %q in %s", req.Store, cfg.File)
		}
		allow = st.Domains
	} else {
		cfg = nil
	}
	l := s.limits(cfg)
	if err := req.Validate(l, allow...); err != nil {
		return err
	}
	for i := range req.Apps {
		a := &req.Apps[i]
		b, err := s.resolveImage(ctx, fmt.Sprintf("apps[%d]", i), api.ImageRef{Store: req.Store, App: a.App, Ref: a.Ref, Digest: a.Digest}, l)
		if err != nil {
			return err
		}
		a.Image.Ref, a.Image.Insecure, a.Ref, a.Digest = b.DriverRef, false, b.Ref, b.Digest
	}
	return nil
}
