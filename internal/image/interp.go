package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// DefaultPath is the search path when an image sets no PATH (Docker's default).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// LookPath reports whether a program called name is in one of the directories
// of the image's PATH, reading its layers (whiteouts applied). It is for
// catching, before a deploy, an image that cannot start in a container:
// `node server.js` on a base with no node.
func LookPath(img v1.Image, name string) (bool, error) {
	if name == "" || strings.Contains(name, "/") {
		return false, fmt.Errorf("%q is not a program name", name)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return false, fmt.Errorf("reading the image config: %w", err)
	}
	searchPath := DefaultPath
	for _, kv := range cf.Config.Env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			searchPath = v
		}
	}
	want := map[string]bool{}
	for _, d := range strings.Split(searchPath, ":") {
		if d != "" {
			want[strings.TrimPrefix(path.Join(path.Clean("/"+d), name), "/")] = true
		}
	}
	layers, err := img.Layers()
	if err != nil {
		return false, err
	}
	present := map[string]bool{}
	for i, l := range layers {
		if err := scanLayer(l, want, present); err != nil {
			return false, fmt.Errorf("reading layer %d: %w", i, err)
		}
	}
	return len(present) > 0, nil
}

// scanLayer records which wanted paths the layer adds, and drops those it whites out.
func scanLayer(l v1.Layer, want, present map[string]bool) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		p := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		dir, base := path.Split(p)
		if wh, ok := strings.CutPrefix(base, ".wh."); ok {
			gone := path.Join(dir, wh)
			for w := range present {
				if w == gone || strings.HasPrefix(w, gone+"/") || wh == ".wh..opq" && strings.HasPrefix(w, dir) {
					delete(present, w)
				}
			}
			continue
		}
		if want[p] && h.Typeflag != tar.TypeDir {
			present[p] = true
		}
	}
}
