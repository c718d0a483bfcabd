package docker

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
)

// Host returns the engine address the driver talks to.
func (d *Driver) Host() string { return d.host }

// RegistryAuth encodes the keychain's credentials for the registry of the
// image reference ref as the engine's X-Registry-Auth value ("" for
// anonymous), e.g. for a swarm service that its nodes pull with.
func (d *Driver) RegistryAuth(ref string) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", ref, err)
	}
	return d.registryAuth(r.Context().Registry)
}
