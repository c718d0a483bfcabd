package build

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// ShimDir holds the start scripts the framework presets write into .deploy.
const ShimDir = ".slipway/start"

// nextConfigNames are the files Next.js reads its config from, in its order.
var nextConfigNames = []string{"next.config.js", "next.config.mjs", "next.config.ts", "next.config.cjs", "next.config.mts"}

// nextLayout is where a standalone build put its server.
type nextLayout struct {
	maps   []mapping
	server string // server.js relative to .deploy
}

// nextMappings maps a standalone build into .deploy. Next writes
// .next/standalone/server.js, or, when it traces from a workspace root above
// the app (a lockfile further up), .next/standalone/<path>/server.js with the
// hoisted node_modules at the standalone root. .next/static and public are not
// part of the standalone output: Next expects them beside server.js.
func nextMappings(dir, source string) (*nextLayout, error) {
	sa := filepath.Join(dir, ".next", "standalone")
	if st, err := os.Stat(sa); err != nil || !st.IsDir() {
		return nil, errNoStandalone(dir, source)
	}
	rel, err := findNextServer(sa)
	if err != nil {
		return nil, fmt.Errorf("next preset: %w", err)
	}
	at := func(p string) string { return path.Join(rel, p) }
	return &nextLayout{
		maps: []mapping{{src: ".next/standalone", dst: "."},
			{src: ".next/static", dst: at(".next/static"), optional: true},
			{src: "public", dst: at("public"), optional: true}},
		server: at("server.js"),
	}, nil
}

// findNextServer returns the directory, relative to the standalone root and
// slash-separated, of server.js: the root's, else the shallowest one that
// has a .next beside it.
func findNextServer(root string) (string, error) {
	if st, err := os.Stat(filepath.Join(root, "server.js")); err == nil && !st.IsDir() {
		return ".", nil
	}
	var found []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "node_modules" {
			return filepath.SkipDir
		}
		if d.Name() != "server.js" || d.IsDir() {
			return nil
		}
		if st, err := os.Stat(filepath.Join(filepath.Dir(p), ".next")); err == nil && st.IsDir() {
			rel, _ := filepath.Rel(root, filepath.Dir(p))
			found = append(found, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if len(found) == 0 {
		return "", fmt.Errorf("%s has no server.js: was it built with output: 'standalone'?", root)
	}
	sort.Slice(found, func(i, j int) bool {
		return strings.Count(found[i], "/") < strings.Count(found[j], "/") || found[i] < found[j]
	})
	if found[0] == "." {
		return ".", nil
	}
	return found[0], nil
}

// configOpenRe finds the line that opens a Next config object.
var configOpenRe = regexp.MustCompile(`(?:(?:const|let|var)\s+\w+\s*(?::\s*[\w.]+)?\s*=|module\.exports\s*=|export\s+default)\s*(?:\w+\()?\s*\{`)

// errNoStandalone names the config file and the line to add, so that a
// build without standalone output never becomes an image that cannot start.
func errNoStandalone(dir, source string) error {
	if source == "" {
		source = dir
	}
	for _, n := range nextConfigNames {
		f, err := os.Open(filepath.Join(dir, n))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		defer f.Close()
		line, sc := 0, bufio.NewScanner(f)
		for i := 1; sc.Scan(); i++ {
			if configOpenRe.MatchString(sc.Text()) {
				line = i
				break
			}
		}
		where := path.Join(filepath.ToSlash(source), n)
		if line > 0 {
			return fmt.Errorf("next preset: .next/standalone not found: %s:%d: add `output: 'standalone',` to the config object opened on that line (Slipway ships Next's standalone server), or set deploy.include and entrypoint for the app", where, line)
		}
		return fmt.Errorf("next preset: .next/standalone not found: add `output: 'standalone'` to the config object in %s (Slipway ships Next's standalone server), or set deploy.include and entrypoint for the app", where)
	}
	return fmt.Errorf("next preset: .next/standalone not found: create %s/next.config.js with `module.exports = { output: 'standalone' };` (Slipway ships Next's standalone server), or set deploy.include and entrypoint for the app", filepath.ToSlash(source))
}

// nextShim starts Next's standalone server on the runtime's listen address:
// server.js listens on HOSTNAME, which Docker sets to the container id and a
// login shell to the machine's name, so it is set from HOST (the process
// runtime's 127.0.0.1), else every interface (inside a container).
func nextShim(server string) string {
	return `// Written by Slipway: starts Next.js's standalone server on the runtime's address.
process.env.HOSTNAME = process.env.HOST || '0.0.0.0';
process.env.PORT = process.env.PORT || '3000';
require('../../` + server + `');
`
}

// nuxtShim starts Nitro's server: Nitro prefers NITRO_PORT/NITRO_HOST over
// PORT/HOST, so a stray NITRO_PORT in the env would move it off the port the
// runtime gave; both follow the runtime.
const nuxtShim = `// Written by Slipway: starts Nuxt's Nitro server on the runtime's address.
const port = process.env.PORT || process.env.NITRO_PORT || '3000';
const host = process.env.HOST || '0.0.0.0';
process.env.PORT = process.env.NITRO_PORT = port;
process.env.HOST = process.env.NITRO_HOST = host;
await import('../../.output/server/index.mjs');
`

// writeShims writes the preset's start scripts into the .deploy being made.
func (p *Production) writeShims(deployDir string) error {
	if len(p.shims) == 0 {
		return nil
	}
	d := filepath.Join(deployDir, filepath.FromSlash(ShimDir))
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	for n, body := range p.shims {
		if err := os.WriteFile(filepath.Join(d, n), []byte(body), 0o644); err != nil {
			return fmt.Errorf("writing the start script %s: %w", n, err)
		}
		p.Files++
		p.Bytes += int64(len(body))
	}
	return nil
}
