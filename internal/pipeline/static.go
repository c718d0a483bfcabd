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
// of a process: the app's `static: DIR`, or an image that has nothing to
// run and an index.html in its working directory. The process driver
// unpacks every image anyway; with a container runtime, only images whose
// config names nothing to run are unpacked to look. nil: run the app.
func (d *Deployer) staticSite(ctx context.Context, a AppDeploy) (*proxy.StaticSite, error) {
	du, driverUnpacks := d.Driver.(driver.Unpacker)
	if a.Static == "" && !driverUnpacks && !d.nothingToRun(ctx, a) {
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
	out := &proxy.StaticSite{Dir: resolved, SPA: a.SPA}
	if err := staticHealth(a, out); err != nil {
		return nil, err
	}
	return out, nil
}

// staticHealth checks a static site's health path before anything starts:
// no process runs to answer it, the router serves files only, so a
// configured path must name a file of the site (the SPA fallback does
// not count). Verify asks it after the cutover; without this, a site kept
// from a server app's config (`health: /healthz`) failed there, late and
// with a bare 404. The default check ("/", any answer below 500) needs
// nothing: the site has an index.html or files at the top.
func staticHealth(a AppDeploy, site *proxy.StaticSite) error {
	h := a.Health
	if h.Path == "" || h.MaxStatus > 0 {
		return nil
	}
	name, tried, err := site.Serves(h.Path)
	if err != nil {
		return fmt.Errorf("%w %s: checking health path %s: %w", ErrStaticSite, a.App, h.Path, err)
	}
	if name != "" {
		return nil
	}
	why := "it has `static: " + a.Static + "`"
	if a.Static == "" {
		why = "it was detected as one: its image has an index.html and nothing to run"
	}
	looked := "no file may answer it (dot files and paths outside the site are never served)"
	if len(tried) > 0 {
		looked = "none of " + strings.Join(tried, ", ") + " is in the site"
	}
	return fmt.Errorf("%w %s: health path %s cannot pass: the app is a static site (%s), so no process answers it and the router serves only files, and %s; add that file to the build output, or remove the app's health path (the default check asks / of the site)",
		ErrStaticSite, a.App, h.Path, why, looked)
}

// pruneStatic removes static sites' unpacked images that no release in
// keep uses, when they are unpacked apart from the runtime's own images
// (<data>/static beside a container runtime); the runtime's Prune covers
// the process driver's. A site the router serves belongs to a live
// release, and replaced ones were closed at their drain.
func (d *Deployer) pruneStatic(ctx context.Context, keep []string) ([]string, error) {
	p, ok := d.Unpacker.(driver.Pruner)
	if !ok || any(d.Unpacker) == any(d.Driver) {
		return nil, nil
	}
	return p.Prune(ctx, keep)
}

// nothingToRun says, for a runtime that does not unpack images, whether
// a's image has no entrypoint and no command, as the static unpacker reads
// its config: only then is it worth unpacking to look for an index.html.
func (d *Deployer) nothingToRun(ctx context.Context, a AppDeploy) bool {
	pc, ok := d.Unpacker.(driver.ProcessChecker)
	if !ok || a.Image.Ref == "" {
		return false
	}
	runs, err := pc.HasProcess(ctx, a.Image)
	return err == nil && !runs // an unreadable config is Start's to report
}
