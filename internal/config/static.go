package config

import "path"

// static checks an app's static site settings: a directory inside the
// production files, and no process settings that would never be used.
func (v *validator) static(c *Config, a *App, where string) {
	if a.Static == "" {
		if a.SPA {
			v.ps.errorf(c.File, a.Pos, "add `static: DIR` (the built site's directory) or remove spa", "%s: spa is only for static sites", where)
		}
		return
	}
	if why := relPathProblem(a.Static); why != "" {
		v.ps.errorf(c.File, a.Pos, "name a directory of the build output, like dist or out", "%s: static %q %s", where, a.Static, why)
		return
	}
	a.Static = path.Clean(a.Static)
	if len(a.Entrypoint) > 0 {
		v.ps.errorf(c.File, a.Pos, "a static site runs no process: remove entrypoint, or static", "%s: static and entrypoint both set", where)
	}
}
