package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// BuildStacks are the detected stacks that build in an image, the keys
// image.stacks accepts (a static site builds nothing).
var BuildStacks = []string{"node", "python", "ruby", "go"}

// DefaultStackImages are the official language images the stacks build in
// when image.stacks names none.
var DefaultStackImages = map[string]string{
	"node":   "node:20-slim",
	"python": "python:3.12-slim",
	"ruby":   "ruby:3.3-slim",
	"go":     "golang:1.24",
}

// StackImage is the image the app's stack builds in: the app's
// image.stacks entry, the project's, else the official image ("" for a
// stack that builds nothing).
func (c *Config) StackImage(app *App, stack string) string {
	if app != nil && app.Image.Stacks[stack] != "" {
		return app.Image.Stacks[stack]
	}
	if c.Image.Stacks[stack] != "" {
		return c.Image.Stacks[stack]
	}
	return DefaultStackImages[stack]
}

// stackImages checks image.stacks, the project's and every app's: known
// stack names, and image references a build can start a container from.
func (v *validator) stackImages() {
	v.stackSpec(v.c.Image, "image.stacks")
	for i, a := range v.c.Apps {
		v.stackSpec(a.Image, fmt.Sprintf("apps[%d].image.stacks", i))
	}
}

func (v *validator) stackSpec(im ImageSpec, where string) {
	for _, k := range sortedKeys(im.Stacks) {
		ref := im.Stacks[k]
		if !slices.Contains(BuildStacks, k) {
			hint := DidYouMean(k, BuildStacks)
			if hint == "" {
				hint = "stacks are " + strings.Join(BuildStacks, ", ")
			}
			v.ps.errorf(v.c.File, im.Pos, hint, "%s.%s: unknown stack %q", where, k, k)
			continue
		}
		if _, err := name.ParseReference(ref); err != nil || strings.TrimSpace(ref) != ref {
			v.ps.errorf(v.c.File, im.Pos, "name an image like python:3.12-slim or registry.example.com/base/python:3.12", "%s.%s: %q is not an image reference", where, k, ref)
		}
	}
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
