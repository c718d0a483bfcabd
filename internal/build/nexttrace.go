package build

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
)

// nextTraceHook is preloaded into a Next.js app's build step: it keeps the
// standalone trace's analyses of node_modules between builds (see the file).
//
//go:embed nexttrace.cjs
var nextTraceHook []byte

// NextTraceEnv turns the trace cache off when set to "off" in the build env.
const NextTraceEnv = "SLIPWAY_NEXT_TRACE_CACHE"

// nextTraceDir is where the trace analyses of app's node_modules under key
// are kept: inside the dependency cache entry, so a new lockfile drops them.
func (c *Cache) nextTraceDir(app, key string) string {
	return filepath.Join(c.depsDir(app, key), "next-trace")
}

// hookFile writes the hook under the cache dir once per content, and returns its path.
func (c *Cache) hookFile() (string, error) {
	c.hookOnce.Do(func() {
		sum := sha256.Sum256(nextTraceHook)
		p := filepath.Join(c.Dir, "hooks", "next-trace-"+hex.EncodeToString(sum[:6])+".cjs")
		if b, err := os.ReadFile(p); err == nil && string(b) == string(nextTraceHook) {
			c.hookPath = p
			return
		}
		if c.hookErr = os.MkdirAll(filepath.Dir(p), 0o755); c.hookErr != nil {
			return
		}
		tmp := p + ".tmp"
		if c.hookErr = os.WriteFile(tmp, nextTraceHook, 0o644); c.hookErr != nil {
			return
		}
		if c.hookErr = os.Rename(tmp, p); c.hookErr == nil {
			c.hookPath = p
		}
	})
	return c.hookPath, c.hookErr
}

// nextTraceStepEnv is what a Next.js app's build step gets added to its env
// for the trace cache: the hook on NODE_OPTIONS (after what the env has) and
// the cache dir. Nil when the app does not use Next.js, the env turned the
// cache off, or the hook's path cannot be quoted for NODE_OPTIONS.
func (c *Cache) nextTraceStepEnv(dir, app, key string, env []string) map[string]string {
	if key == "" {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "next", "package.json")); err != nil {
		return nil
	}
	nodeOpts := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, NextTraceEnv+"="); ok && (v == "off" || v == "0" || v == "false") {
			return nil
		}
		if v, ok := strings.CutPrefix(kv, "NODE_OPTIONS="); ok {
			nodeOpts = v
		}
	}
	hook, err := c.hookFile()
	if err != nil || strings.ContainsAny(hook, "\"\\") {
		return nil
	}
	if nodeOpts != "" {
		nodeOpts += " "
	}
	return map[string]string{
		"NODE_OPTIONS": nodeOpts + `--require "` + hook + `"`,
		NextTraceEnv:   c.nextTraceDir(app, key),
	}
}
