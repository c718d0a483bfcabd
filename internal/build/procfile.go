package build

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Procfile is the Heroku-style list of an app's process types, relative to the app.
const Procfile = "Procfile"

var procNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// ProcfileEntry is one `name: command` line.
type ProcfileEntry struct {
	Name, Command string
	Line          int
}

// ReadProcfile parses dir/Procfile; none is no error. Blank lines and lines
// starting with # are skipped; anything else must be `name: command`.
func ReadProcfile(dir string) ([]ProcfileEntry, error) {
	f, err := os.Open(filepath.Join(dir, Procfile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []ProcfileEntry
	seen := map[string]int{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, cmd, ok := strings.Cut(line, ":")
		name, cmd = strings.TrimSpace(name), strings.TrimSpace(cmd)
		switch {
		case !ok || !procNameRe.MatchString(name):
			return nil, fmt.Errorf("%s:%d: want `name: command`, e.g. `worker: node worker.js`", Procfile, n)
		case cmd == "":
			return nil, fmt.Errorf("%s:%d: process %q has no command", Procfile, n, name)
		case seen[name] > 0:
			return nil, fmt.Errorf("%s:%d: process %q is already defined on line %d", Procfile, n, name, seen[name])
		}
		seen[name] = n
		out = append(out, ProcfileEntry{Name: name, Command: cmd, Line: n})
	}
	return out, sc.Err()
}
