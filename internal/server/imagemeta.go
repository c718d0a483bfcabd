package server

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-dev/slipway/internal/api"
	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/registry"
)

// readImage reads the image an app deploys, by its recorded digest, from
// serve's own store or its registry: the Deployer reads the build's
// metadata labels from it (pipeline.Deployer.ReadImage).
func (s *Server) readImage(ctx context.Context, a pipeline.AppDeploy) (v1.Image, error) {
	ref, err := name.ParseReference(a.Ref, name.WeakValidation)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", a.Ref, err)
	}
	d := ref.Context().Digest(a.Digest)
	if ref.Context().RegistryStr() == api.LayoutHost {
		return s.Images.Image(d)
	}
	return registry.NewRemote(registry.WithTimeout(s.o.resolveTimeout()), registry.WithInsecure(a.Image.Insecure)).Image(ctx, d)
}
