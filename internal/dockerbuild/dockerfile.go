package dockerbuild

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Dockerfile is what Slipway checks in a Dockerfile before building it.
type Dockerfile struct {
	Path string
	// Stages are the named stages, in order ("" for an unnamed one).
	Stages []string
	// Bases are the FROM images that are not earlier stages and use no
	// build arg, in order, without duplicates.
	Bases []string
	// SecretMounts are the ids of `RUN --mount=type=secret` mounts, each
	// with the line that mounts it.
	SecretMounts []SecretMount
}

// SecretMount is one `RUN --mount=type=secret,id=ID` of a Dockerfile.
type SecretMount struct {
	ID   string
	Line int
}

// ParseDockerfile reads the Dockerfile at path.
func ParseDockerfile(path string) (*Dockerfile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("%s: no FROM instruction", path)
	}
	df := &Dockerfile{Path: path}
	names := map[string]bool{}
	for _, st := range stages {
		base := strings.ToLower(st.BaseName)
		if !names[base] && !strings.Contains(st.BaseName, "$") && st.BaseName != "scratch" && !slices.Contains(df.Bases, st.BaseName) {
			df.Bases = append(df.Bases, st.BaseName)
		}
		df.Stages = append(df.Stages, st.Name)
		if st.Name != "" {
			names[strings.ToLower(st.Name)] = true
		}
		for _, cmd := range st.Commands {
			run, ok := cmd.(*instructions.RunCommand)
			if !ok {
				continue
			}
			// Mount options are parsed when the command is expanded; ids
			// are taken as written (a build arg in one stays unexpanded).
			if err := run.Expand(func(w string) (string, error) { return w, nil }); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, line(run), err)
			}
			for _, m := range instructions.GetMounts(run) {
				if m.Type != instructions.MountTypeSecret {
					continue
				}
				id := m.CacheID
				if id == "" {
					id = filepath.Base(m.Target) // BuildKit's default id is the target's base name
				}
				df.SecretMounts = append(df.SecretMounts, SecretMount{ID: id, Line: line(run)})
			}
		}
	}
	return df, nil
}

// CheckTarget returns an error naming field when target is not a stage.
func (df *Dockerfile) CheckTarget(field, target string) error {
	if target == "" {
		return nil
	}
	for _, s := range df.Stages {
		if strings.EqualFold(s, target) {
			return nil
		}
	}
	var named []string
	for _, s := range df.Stages {
		if s != "" {
			named = append(named, s)
		}
	}
	if len(named) == 0 {
		return fmt.Errorf("%s: stage %q is not in %s, which names no stage (write `FROM image AS %s`)", field, target, df.Path, target)
	}
	return fmt.Errorf("%s: stage %q is not in %s (its stages: %s)", field, target, df.Path, strings.Join(named, ", "))
}

// CheckSecrets returns an error naming the Dockerfile's line when a RUN
// mounts a secret that field does not list: BuildKit would mount nothing,
// and the step would run without it.
func (df *Dockerfile) CheckSecrets(field string, listed []string) error {
	for _, m := range df.SecretMounts {
		if !slices.Contains(listed, m.ID) {
			return fmt.Errorf("%s:%d: RUN mounts secret %q, which %s does not list (add it there: secrets are read from env %s or the file named by %s_FILE)", df.Path, m.Line, m.ID, field, m.ID, m.ID)
		}
	}
	return nil
}

func line(run *instructions.RunCommand) int {
	if loc := run.Location(); len(loc) > 0 {
		return loc[0].Start.Line
	}
	return 0
}
