package pipeline

import (
	"fmt"

	"github.com/slipway-dev/slipway/internal/build"
)

// collect selects the app's production files and its start command: the
// config's entrypoint, else the Procfile's or config's web command, else the
// preset's or detected stack's convention. A static site (detected, or
// `static:` in the config) starts nothing; any other app without a start
// command is an error naming the config.
func collect(u *buildUnit, cfgFile string) (*build.Production, []string, error) {
	sel := build.Selection{Framework: u.app.Framework, Include: u.app.Deploy.Include, Exclude: u.app.Deploy.Exclude,
		SourceDir: u.app.Path, StartSet: len(u.app.Entrypoint) > 0 || u.procs.web != "" || u.app.Static != ""}
	prod, err := build.Collect(u.dir, sel)
	if err != nil {
		return nil, nil, fmt.Errorf("%s/%s: collecting production files: %w", u.store.ID, u.app.ID, err)
	}
	entry := u.app.Entrypoint
	if len(entry) == 0 {
		entry = u.procs.webEntrypoint()
	}
	if len(entry) == 0 {
		entry = prod.Entrypoint
	}
	if len(entry) == 0 && prod.Preset != "static" && u.app.Static == "" {
		return nil, nil, fmt.Errorf("%s/%s: no entrypoint (%s): set `entrypoint` for app %s in %s, or a Procfile `web:` line", u.store.ID, u.app.ID, prod.StartWhy, u.app.ID, cfgFile)
	}
	return prod, entry, nil
}

// first is argv's program, "" for none.
func first(argv []string) string {
	if len(argv) == 0 {
		return ""
	}
	return argv[0]
}
