package process

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// defaultImagePath is what a container runtime uses when the image sets no PATH.
const defaultImagePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// defaultHostPath is used when Slipway itself runs without PATH.
const defaultHostPath = "/usr/local/bin:/usr/bin:/bin"

// environ composes a process's environment: the image's, then the spec's
// (same keys replaced), then the driver's own variables (which win), with PATH
// rewritten: the image's PATH entries (or the spec's PATH, if it sets one)
// mapped into the root filesystem, then the host's PATH. Nothing else of the
// host environment is inherited.
func environ(rootfs string, imageEnv []string, spec, own map[string]string, hostPath string) []string {
	vars := map[string]string{}
	for _, kv := range imageEnv {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	for k, v := range spec {
		vars[k] = v
	}
	for k, v := range own {
		vars[k] = v
	}
	imagePath, ok := vars["PATH"]
	if !ok {
		imagePath = defaultImagePath
	}
	vars["PATH"] = composePath(rootfs, imagePath, hostPath)

	keys := make([]string, 0, len(vars))
	for k := range vars {
		if k != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	env := make([]string, 0, len(keys))
	for _, k := range keys {
		env = append(env, k+"="+vars[k])
	}
	return env
}

// composePath maps imagePath's absolute entries that exist in rootfs into it,
// then appends hostPath; duplicates and relative entries are dropped.
func composePath(rootfs, imagePath, hostPath string) string {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if p != "" && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, e := range filepath.SplitList(imagePath) {
		if !path.IsAbs(e) {
			continue
		}
		mapped := filepath.Join(rootfs, filepath.FromSlash(e))
		if fi, err := os.Stat(mapped); err == nil && fi.IsDir() {
			add(mapped)
		}
	}
	if hostPath == "" {
		hostPath = defaultHostPath
	}
	for _, e := range filepath.SplitList(hostPath) {
		add(e)
	}
	return strings.Join(out, string(filepath.ListSeparator))
}

// resolveArgv0 finds the program to execute for argv[0]:
//   - an absolute path: the root filesystem's copy if there is one, else the
//     host's (an image built on scratch may name /usr/bin/node and get the host's);
//   - a relative path with a slash: relative to the working directory cwd;
//   - a bare name: the first executable file of that name along PATH (as
//     composed by environ: image entries mapped into the root filesystem first).
func resolveArgv0(argv0, rootfs, cwd, pathVar string) (string, error) {
	switch {
	case argv0 == "":
		return "", fmt.Errorf("no command to run (the image has no entrypoint or cmd)")
	case path.IsAbs(argv0):
		inImage := filepath.Join(rootfs, filepath.FromSlash(argv0))
		if isExecutable(inImage) {
			return inImage, nil
		}
		if isExecutable(argv0) {
			return argv0, nil
		}
		return "", fmt.Errorf("%s: no executable file at that path in the image or on the host", argv0)
	case strings.Contains(argv0, "/"):
		return filepath.Join(cwd, filepath.FromSlash(argv0)), nil
	}
	for _, dir := range filepath.SplitList(pathVar) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, argv0)
		if isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in the image's PATH or the host's PATH (%s)", argv0, pathVar)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// lookupEnv returns the value of key in env (KEY=VALUE entries).
func lookupEnv(env []string, key string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// entrypointWrapper is the argv[3] image.Build gives the shell that runs an
// entrypoint script before the main process.
const entrypointWrapper = "slipway-entrypoint"

// mapEntrypointScript rewrites Slipway's own entrypoint-script wrapper
//
//	/bin/sh -c '<script>' && exec "$@"' slipway-entrypoint <main...>
//
// so that the script's absolute image path, and the main process's if
// absolute, point into the root filesystem; without a chroot the host would
// look for them at their image paths. Any other
// argv is returned unchanged: absolute paths inside arbitrary shell commands
// or scripts refer to the host (see the package doc).
func mapEntrypointScript(argv []string, rootfs string) []string {
	if len(argv) < 4 || argv[1] != "-c" || argv[3] != entrypointWrapper || path.Base(argv[0]) != "sh" {
		return argv
	}
	script := argv[2]
	i := strings.IndexByte(script, '\'')
	if i < 0 {
		return argv
	}
	j := strings.IndexByte(script[i+1:], '\'')
	if j < 0 {
		return argv
	}
	p := script[i+1 : i+1+j]
	if !path.IsAbs(p) {
		return argv
	}
	mapped := filepath.Join(rootfs, filepath.FromSlash(p))
	if _, err := os.Lstat(mapped); err != nil {
		return argv
	}
	if strings.ContainsRune(mapped, '\'') {
		return argv
	}
	out := append([]string{}, argv...)
	out[2] = script[:i+1] + mapped + script[i+1+j:]
	// The shell execs the main process by its argv[0]: map it too.
	if len(out) > 4 && path.IsAbs(out[4]) {
		if main := filepath.Join(rootfs, filepath.FromSlash(out[4])); isExecutable(main) {
			out[4] = main
		}
	}
	return out
}

// workDir is the instance's working directory: the image's WorkingDir inside
// the root filesystem (created if the image lacks it, as container runtimes do).
func workDir(rootfs, imageWorkDir string) (string, error) {
	if imageWorkDir == "" || !path.IsAbs(imageWorkDir) {
		imageWorkDir = "/"
	}
	rel := strings.TrimPrefix(path.Clean(imageWorkDir), "/")
	if rel == "" {
		return rootfs, nil
	}
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return "", err
	}
	defer root.Close()
	fi, err := root.Stat(rel)
	if err != nil {
		if !os.IsNotExist(err) {
			return "", err
		}
		if err := root.MkdirAll(rel, 0o755); err != nil {
			return "", fmt.Errorf("creating working directory %s: %w", imageWorkDir, err)
		}
	} else if !fi.IsDir() {
		return "", fmt.Errorf("working directory %s: %w", imageWorkDir, fs.ErrInvalid)
	}
	return filepath.Join(rootfs, filepath.FromSlash(rel)), nil
}
