package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/proxy"
)

// ErrStaticSite marks a static site that cannot be served from its image.
var ErrStaticSite = errors.New("static site")

// staticSite returns the site an app serves from its image's files instead
// of a process: the app's `static: DIR`, or, when the runtime unpacks images
// on this host anyway (the process driver), an image that has nothing to
// run and an index.html in its working directory. nil: run the app.
func (d *Deployer) staticSite(ctx context.Context, a AppDeploy) (*proxy.StaticSite, error) {
	du, driverUnpacks := d.Driver.(driver.Unpacker)
	if a.Static == "" && !driverUnpacks {
		return nil, nil
	}
	un := d.Unpacker
	if un == nil {
		un = du
	}
	if un == nil {
		return nil, fmt.Errorf("%w %s: this server cannot unpack images for the router", ErrStaticSite, a.App)
	}
	if a.Static == "" && a.Image.Ref == "" {
		return nil, nil
	}
	u, err := un.Unpack(ctx, a.Image)
	if err != nil {
		if a.Static == "" {
			return nil, nil // not ours to judge: Start reports it
		}
		return nil, fmt.Errorf("%w %s: unpacking %s: %w", ErrStaticSite, a.App, a.Image.Ref, err)
	}
	dir := a.Static
	if dir == "" {
		if len(u.Entrypoint)+len(u.Cmd) > 0 {
			return nil, nil
		}
		dir = "."
	}
	root, err := filepath.EvalSymlinks(u.Root)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrStaticSite, a.App, err)
	}
	site := filepath.Join(root, filepath.FromSlash(path.Clean("/"+u.WorkDir)), filepath.FromSlash(path.Clean("/"+dir)))
	resolved, err := filepath.EvalSymlinks(site)
	if err != nil {
		if a.Static == "" {
			return nil, nil
		}
		return nil, fmt.Errorf("%w %s: directory %q is not in the image (looked in %s): %w", ErrStaticSite, a.App, a.Static, u.WorkDir, err)
	}
	if resolved != root && !strings.HasPrefix(resolved, root+string(filepath.Separator)) {
		return nil, fmt.Errorf("%w %s: directory %q leads outside the image", ErrStaticSite, a.App, a.Static)
	}
	if a.Static == "" {
		if st, err := os.Stat(filepath.Join(resolved, "index.html")); err != nil || !st.Mode().IsRegular() {
			return nil, nil
		}
	}
	return &proxy.StaticSite{Dir: resolved, SPA: a.SPA}, nil
}
