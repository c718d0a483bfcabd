package config

import (
	"fmt"
	"io/fs"
	"path"
	"reflect"

	"go.yaml.in/yaml/v3"
)

// DefaultDockerfile is the file that makes an app a Dockerfile build when
// its config names none.
const DefaultDockerfile = "Dockerfile"

// BuildSpec is an app's `build:` key: a shell command (`build: "npm run
// dist"`, kept in App.Build) or a Dockerfile build
// (`build: {dockerfile: PATH, target: STAGE, args: {...}, secrets: [NAME]}`).
type BuildSpec struct {
	Pos Pos `yaml:"-" json:"-"`
	// Dockerfile is relative to the app directory; default "Dockerfile".
	// Setting any key of the mapping makes the app a Dockerfile build.
	Dockerfile string `yaml:"dockerfile" json:"dockerfile,omitempty"`
	// Target is the stage to build; default the last one.
	Target string `yaml:"target" json:"target,omitempty"`
	// Args are the build args (ARG in the Dockerfile).
	Args map[string]string `yaml:"args" json:"args,omitempty"`
	// Secrets are read like store secrets (env NAME, or the file named by
	// NAME_FILE) and mounted for `RUN --mount=type=secret,id=NAME`; never
	// in a layer, the image config or the history.
	Secrets []string `yaml:"secrets" json:"secrets,omitempty"`
	// Builder forces what builds it: "docker" (the Docker Engine's build
	// API) or "buildah". Default: the engine when one answers, else buildah.
	Builder string `yaml:"builder" json:"builder,omitempty"`

	set     bool   // the mapping form was used
	command string // the scalar form, copied to App.Build by the validator
}

// IsDockerfile reports whether the mapping form was used.
func (b BuildSpec) IsDockerfile() bool { return b.set }

// AsDockerfile returns b as a Dockerfile build (default file Dockerfile),
// as the mapping form reads.
func (b BuildSpec) AsDockerfile() BuildSpec {
	b.set = true
	if b.Dockerfile == "" {
		b.Dockerfile = DefaultDockerfile
	}
	return b
}

// decodeNode reads a scalar command or a Dockerfile mapping.
func (b *BuildSpec) decodeNode(d *decoder, n *yaml.Node, where string) {
	b.Pos = posOf(n)
	if n.Kind == yaml.ScalarNode {
		b.command = n.Value
		return
	}
	var m struct {
		Dockerfile string            `yaml:"dockerfile"`
		Target     string            `yaml:"target"`
		Args       map[string]string `yaml:"args"`
		Secrets    []string          `yaml:"secrets"`
		Builder    string            `yaml:"builder"`
	}
	d.decodeStruct(n, reflect.ValueOf(&m).Elem(), where)
	b.Dockerfile, b.Target, b.Args, b.Secrets, b.Builder, b.set = m.Dockerfile, m.Target, m.Args, m.Secrets, m.Builder, true
}

// dockerBuild checks an app's build key; the Dockerfile must exist in the
// base app (a store may override it, not add it).
func (v *validator) dockerBuild(c *Config, a *App, where string) {
	b := &a.BuildSpec
	if b.command != "" && a.Build == "" {
		a.Build = b.command
	}
	if !b.set {
		return
	}
	pos := b.Pos
	if pos.Line == 0 {
		pos = a.Pos
	}
	if b.Dockerfile == "" {
		b.Dockerfile = DefaultDockerfile
	}
	if why := relPathProblem(b.Dockerfile); why != "" {
		v.ps.errorf(c.File, pos, "name a file inside the app directory, like Dockerfile or docker/Dockerfile.prod", "%s.build.dockerfile: %q %s", where, b.Dockerfile, why)
		return
	}
	b.Dockerfile = path.Clean(b.Dockerfile)
	if st, err := fs.Stat(v.fsys, path.Join(a.Path, b.Dockerfile)); err == nil && !st.Mode().IsRegular() {
		v.ps.errorf(c.File, pos, "", "%s.build.dockerfile: %s is not a regular file", where, path.Join(a.Path, b.Dockerfile))
	} else if err != nil {
		v.ps.errorf(c.File, pos, fmt.Sprintf("create %s or fix the path", path.Join(a.Path, b.Dockerfile)), "%s.build.dockerfile: %s does not exist", where, path.Join(a.Path, b.Dockerfile))
	}
	for k := range b.Args {
		if !envNameRe.MatchString(k) {
			v.ps.errorf(c.File, pos, "", "%s.build.args: %q is not a valid build arg name", where, k)
		}
	}
	seen := map[string]bool{}
	for i, s := range b.Secrets {
		switch {
		case !envNameRe.MatchString(s):
			v.ps.errorf(c.File, pos, "a secret is named like an env var: NPM_TOKEN", "%s.build.secrets[%d]: %q is not a valid secret name", where, i, s)
		case seen[s]:
			v.ps.errorf(c.File, pos, "", "%s.build.secrets[%d]: %q is listed twice", where, i, s)
		}
		seen[s] = true
	}
	if !ValidBuilder(b.Builder) {
		v.ps.errorf(c.File, pos, "write docker or buildah, or leave it out to use the engine when one answers, else buildah", "%s.build.builder: %q is not a builder", where, b.Builder)
	}
	if a.Static != "" {
		v.ps.errorf(c.File, pos, "a Dockerfile build makes an image; remove static or build", "%s: static and a Dockerfile build both set", where)
	}
}

// Dockerfile builders: BuildSpec.Builder's values ("" picks one).
const (
	BuilderDocker  = "docker"
	BuilderBuildah = "buildah"
)

// ValidBuilder reports whether s names a Dockerfile builder, or is "".
func ValidBuilder(s string) bool {
	return s == "" || s == BuilderDocker || s == BuilderBuildah
}
