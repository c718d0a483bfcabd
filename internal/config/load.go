package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ErrNotFound is returned when no config file exists in a directory or its parents.
var ErrNotFound = errors.New("no slipway.yaml, slipway.json or alokai.config.json found")

// alokaiApps are the base apps found by convention in the alokai.config.json layout.
var alokaiApps = []App{
	{ID: "storefront-unified-nextjs", Path: "apps/storefront-unified-nextjs", Framework: "next", Port: 3000},
	{ID: "storefront-unified-nuxt", Path: "apps/storefront-unified-nuxt", Framework: "nuxt", Port: 3000},
	{ID: "storefront-middleware", Path: "apps/storefront-middleware", Port: 4000},
}

// Find returns the config file for dir: explicit if given, else the first
// candidate name found in dir or its nearest parent that has one.
func Find(dir, explicit string) (string, error) {
	if explicit != "" {
		p := explicit
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("--config %s: %w (%w)", explicit, ErrNotFound, err)
		}
		return filepath.Abs(p)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := abs; ; d = filepath.Dir(d) {
		for _, n := range configNames {
			if st, err := os.Stat(filepath.Join(d, n)); err == nil && st.Mode().IsRegular() {
				return filepath.Join(d, n), nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%s: %w", abs, ErrNotFound)
		}
	}
}

// Load finds and loads the config for dir (see Find), validating it against the tree on disk.
func Load(dir, explicit string) (*Config, error) {
	file, err := Find(dir, explicit)
	if err != nil {
		return nil, err
	}
	root := filepath.Dir(file)
	return LoadFS(os.DirFS(root), root, filepath.Base(file))
}

// LoadFS loads the config file name from fsys, whose root is the monorepo root
// (absolute path root, used for messages and Config.Root). The store tree is
// discovered in fsys too, so a git tree at some commit loads like the working tree.
// It returns a *ValidationError listing every problem when the config is invalid.
func LoadFS(fsys fs.FS, root, name string) (*Config, error) {
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return Parse(fsys, root, name, data)
}

// Parse decodes and validates config data as if read from fsys/name.
func Parse(fsys fs.FS, root, name string, data []byte) (*Config, error) {
	ps := &problems{}
	c := &Config{Root: root, File: name, Format: FormatSlipway}
	unknown := Error
	if path.Base(name) == "alokai.config.json" {
		c.Format = FormatAlokai
		// The file is shared with Alokai's own tooling, which may know keys Slipway does not.
		unknown = Warning
	}
	if strings.HasSuffix(name, ".json") {
		// encoding/json locates JSON syntax errors exactly; the YAML parser only roughly.
		var anyv any
		if err := json.Unmarshal(data, &anyv); err != nil {
			ps.list = append(ps.list, jsonSyntaxProblem(name, data, err))
			return nil, &ValidationError{Problems: ps.sorted()}
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		ps.list = append(ps.list, syntaxProblem(name, err))
		return nil, &ValidationError{Problems: ps.sorted()}
	}
	d := &decoder{file: name, ps: ps, unknownSeverity: unknown}
	if len(doc.Content) > 0 && doc.Content[0].Kind != yaml.MappingNode {
		ps.errorf(name, posOf(doc.Content[0]), "", "the file must hold a mapping of keys, found %s", kindName(doc.Content[0].Kind))
	} else {
		d.decode(&doc, reflect.ValueOf(c).Elem(), "")
	}
	v := &validator{c: c, fsys: fsys, ps: ps}
	v.defaults()
	v.apps()
	v.stackImages()
	v.schedules()
	v.discover()
	v.stores()
	v.source()
	v.targets()
	if ps.hasErrors() {
		return nil, &ValidationError{Problems: ps.sorted()}
	}
	for _, p := range ps.sorted() {
		c.Warnings = append(c.Warnings, p)
	}
	return c, nil
}

type validator struct {
	c    *Config
	fsys fs.FS
	ps   *problems
	// dirs maps store id to every directory found for it.
	dirs map[string][]foundDir
}

type foundDir struct {
	dir    string // slash path relative to root
	parent string // store id of the enclosing store directory, "" at top level
}

var (
	idRe        = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	repoNameRe  = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	envNameRe   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	hostnameRe  = regexp.MustCompile(`^(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)
	healthPathR = regexp.MustCompile(`^/[^\s]*$`)
)

func (v *validator) defaults() {
	c := v.c
	if c.Project == "" {
		c.Project = filepath.Base(c.Root)
	}
	if c.StoresDir == "" {
		c.StoresDir = DefaultStoresDir
	}
	switch c.Verify.DNS {
	case "":
		c.Verify.DNS = "warn"
	case "warn", "error", "off":
	default:
		v.ps.errorf(c.File, Pos{}, "use warn, error or off", "verify.dns: %q is not one of warn, error, off", c.Verify.DNS)
	}
	if c.Compose.Skip == nil {
		c.Compose.Skip = slices.Clone(DefaultSkip)
	}
	if c.Stores == nil {
		c.Stores = map[string]*Store{}
	}
	if c.Format == FormatAlokai && len(c.Apps) == 0 {
		for _, a := range alokaiApps {
			if st, err := fs.Stat(v.fsys, a.Path); err == nil && st.IsDir() {
				app := a
				c.Apps = append(c.Apps, &app)
			}
		}
		if len(c.Apps) == 0 {
			v.ps.errorf(c.File, Pos{}, "create apps/storefront-unified-nextjs or apps/storefront-unified-nuxt", "no base apps found by convention")
		}
	}
	for id, s := range c.Stores {
		s.ID = id
		s.Configured = true
	}
	for _, a := range c.Apps {
		if a.ID == "" && a.Path != "" {
			a.ID = path.Base(path.Clean(a.Path))
		}
		if a.Port == 0 {
			a.Port = DefaultPort
		}
		if a.Health.Path == "" {
			a.Health.Path, a.Health.Default = DefaultHealthPath, true
		}
		if a.Health.Interval == 0 {
			a.Health.Interval = Duration(time.Second)
		}
		if a.Health.Timeout == 0 {
			a.Health.Timeout = Duration(5 * time.Second)
		}
		if a.Health.Deadline == 0 {
			a.Health.Deadline = Duration(60 * time.Second)
		}
	}
}

// relPathProblem returns why p is not a clean relative path inside the root, or "".
func relPathProblem(p string) string {
	switch {
	case p == "":
		return "is empty"
	case strings.Contains(p, "\\"):
		return "uses backslashes; write paths with /"
	case path.IsAbs(p):
		return "is absolute; write it relative to the monorepo root"
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return "contains '..'; paths must stay inside the monorepo"
		}
	}
	return ""
}

func (v *validator) apps() {
	c := v.c
	seen := map[string]*App{}
	for i, a := range c.Apps {
		where := fmt.Sprintf("apps[%d]", i)
		if a.Path == "" {
			v.ps.errorf(c.File, a.Pos, "", "%s: missing key \"path\"", where)
			continue
		}
		if why := relPathProblem(a.Path); why != "" {
			v.ps.errorf(c.File, a.Pos, "", "%s: path %q %s", where, a.Path, why)
			continue
		}
		a.Path = path.Clean(a.Path)
		if !idRe.MatchString(a.ID) {
			v.ps.errorf(c.File, a.Pos, "use letters, digits, '.', '_' or '-'", "%s: app id %q is not a valid name", where, a.ID)
		}
		if prev, dup := seen[a.ID]; dup {
			v.ps.errorf(c.File, a.Pos, fmt.Sprintf("first defined at line %d", prev.Pos.Line), "duplicate app id %q", a.ID)
		}
		seen[a.ID] = a
		if a.ID == "stores" {
			v.ps.errorf(c.File, a.Pos, "the name is reserved for nested stores", "%s: an app cannot be called \"stores\"", where)
		}
		if st, err := fs.Stat(v.fsys, a.Path); err != nil || !st.IsDir() {
			v.ps.errorf(c.File, a.Pos, "", "%s: app directory %s does not exist", where, a.Path)
		} else if err := noSymlinkInPath(v.fsys, a.Path); err != nil {
			v.ps.errorf(c.File, a.Pos, "", "%s: %v", where, err)
		}
		if a.Port < 1 || a.Port > 65535 {
			v.ps.errorf(c.File, a.Pos, "", "%s: port %d is out of range 1-65535", where, a.Port)
		}
		if !healthPathR.MatchString(a.Health.Path) {
			v.ps.errorf(c.File, a.Pos, "write it like /healthz", "%s: health path %q must start with /", where, a.Health.Path)
		}
		for k := range a.Env {
			if !envNameRe.MatchString(k) {
				v.ps.errorf(c.File, a.Pos, "", "%s: env name %q is not valid", where, k)
			}
		}
		v.static(c, a, where)
		v.dockerBuild(c, a, where)
	}
}

// noSymlinkInPath rejects an app path that goes through a symlink, which could lead outside the repository.
func noSymlinkInPath(fsys fs.FS, p string) error {
	rl, ok := fsys.(fs.ReadLinkFS)
	if !ok {
		return nil
	}
	cur := ""
	for _, el := range strings.Split(p, "/") {
		cur = path.Join(cur, el)
		st, err := rl.Lstat(cur)
		if err != nil {
			return err
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symlink; app directories must be real directories inside the repository", cur)
		}
	}
	return nil
}

// discover walks the store tree: every directory under storesDir is a store,
// and a store's "stores" folder holds its children.
func (v *validator) discover() {
	c := v.c
	v.dirs = map[string][]foundDir{}
	if why := relPathProblem(c.StoresDir); why != "" {
		v.ps.errorf(c.File, Pos{}, "", "storesDir %q %s", c.StoresDir, why)
		return
	}
	c.StoresDir = path.Clean(c.StoresDir)
	st, err := fs.Stat(v.fsys, c.StoresDir)
	if err != nil || !st.IsDir() {
		return // configured stores without directories are reported in stores()
	}
	var walk func(dir, parent string)
	walk = func(dir, parent string) {
		entries, err := fs.ReadDir(v.fsys, dir)
		if errors.Is(err, fs.ErrNotExist) {
			return // a store with no children
		}
		if err != nil {
			v.ps.errorf(dir, Pos{}, "", "reading store directory: %v", err)
			return
		}
		for _, e := range entries {
			p := path.Join(dir, e.Name())
			if e.Type()&fs.ModeSymlink != 0 {
				v.ps.errorf(p, Pos{}, "store directories must be real directories", "symlink in the store tree")
				continue
			}
			if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			id := e.Name()
			v.dirs[id] = append(v.dirs[id], foundDir{dir: p, parent: parent})
			walk(path.Join(p, "stores"), id)
		}
	}
	walk(c.StoresDir, "")
}

func (v *validator) stores() {
	c := v.c
	ids := slices.Sorted(func(yield func(string) bool) {
		seen := map[string]bool{}
		for id := range c.Stores {
			seen[id] = true
			if !yield(id) {
				return
			}
		}
		for id := range v.dirs {
			if !seen[id] && !yield(id) {
				return
			}
		}
	})
	for _, id := range ids {
		found := v.dirs[id]
		s := c.Stores[id]
		if s == nil {
			s = &Store{ID: id}
			if c.Format == FormatAlokai {
				s.Template = true // Alokai: a store directory with no entry is a template store
			} else {
				v.ps.warnf(found[0].dir, Pos{}, fmt.Sprintf("add `%s: {template: true}` under stores in %s", id, c.File), "store directory has no entry in %s; treated as a template store", c.File)
				s.Template = true
			}
			c.Stores[id] = s
		}
		if !idRe.MatchString(id) {
			v.ps.errorf(c.File, s.Pos, "use letters, digits, '.', '_' or '-'", "store id %q is not a valid name", id)
		}
		if len(found) > 1 {
			var where []string
			for _, f := range found {
				where = append(where, f.dir)
			}
			v.ps.errorf(found[1].dir, Pos{}, "store ids must be unique across the whole tree", "duplicate store id %q: found at %s", id, strings.Join(where, " and "))
		}
		if len(found) == 0 {
			v.ps.errorf(c.File, s.Pos, fmt.Sprintf("create %s/%s or remove the entry", c.StoresDir, id), "store %q has no directory", id)
		} else {
			s.Dir = found[0].dir
			dirParent := found[0].parent
			switch {
			case s.Parent == "":
				s.Parent = dirParent
			case dirParent != "" && s.Parent != dirParent:
				v.ps.errorf(c.File, s.Pos, fmt.Sprintf("its directory is nested in %q", dirParent), "store %q: parent %q contradicts the directory tree", id, s.Parent)
			}
		}
	}
	// Parents, cycles, children.
	for _, id := range ids {
		s := c.Stores[id]
		if s.Parent == "" {
			continue
		}
		p := c.Stores[s.Parent]
		if p == nil {
			v.ps.errorf(c.File, s.Pos, DidYouMean(s.Parent, ids), "store %q: parent %q does not exist", id, s.Parent)
			s.Parent = ""
			continue
		}
		p.Children = append(p.Children, id)
	}
	for _, id := range ids {
		seen := map[string]bool{}
		var path []string
		for cur := id; cur != ""; cur = c.Stores[cur].Parent {
			if seen[cur] {
				if cur == id {
					v.ps.errorf(c.File, c.Stores[id].Pos, "", "store %q: parent cycle %s", id, strings.Join(append(path, cur), " -> "))
				}
				break
			}
			seen[cur] = true
			path = append(path, cur)
		}
	}
	domains := map[string]string{}
	appIDs := map[string]bool{}
	var frameworks []string
	for _, a := range c.Apps {
		appIDs[a.ID] = true
		if a.Framework != "" && !slices.Contains(frameworks, a.Framework) {
			frameworks = append(frameworks, a.Framework)
		}
	}
	for _, id := range ids {
		s := c.Stores[id]
		sort.Strings(s.Children)
		fw := c.Framework(id)
		if s.Framework != "" && !slices.Contains(frameworks, s.Framework) {
			v.ps.errorf(c.File, s.Pos, frameworkHint(s.Framework, frameworks), "store %q: framework %q has no base app", id, s.Framework)
		}
		if s.Deployable() {
			var missing []string
			if s.ProjectName == "" {
				missing = append(missing, "projectName")
			}
			if s.Region == "" {
				missing = append(missing, "region")
			}
			if fw == "" {
				missing = append(missing, "framework")
			}
			if len(missing) > 0 {
				v.ps.errorf(c.File, s.Pos, "template stores need none of these: set `template: true` if it is not deployed", "deployable store %q is missing %s", id, strings.Join(missing, ", "))
			}
			if s.ProjectName != "" && !repoNameRe.MatchString(s.ProjectName) {
				v.ps.errorf(c.File, s.Pos, "lowercase letters, digits and single separators . _ -", "store %q: projectName %q cannot name an image repository", id, s.ProjectName)
			}
		}
		for _, d := range s.Domains {
			if !hostnameRe.MatchString(d) {
				v.ps.errorf(c.File, s.Pos, "write a lowercase host name such as shop.example.com", "store %q: domain %q is not a host name", id, d)
				continue
			}
			if other, dup := domains[d]; dup {
				v.ps.errorf(c.File, s.Pos, "", "domain %q is claimed by stores %q and %q", d, other, id)
			}
			domains[d] = id
		}
		for k := range s.Env {
			if !envNameRe.MatchString(k) {
				v.ps.errorf(c.File, s.Pos, "", "store %q: env name %q is not valid", id, k)
			}
		}
		for _, k := range s.Secrets {
			if !envNameRe.MatchString(k) {
				v.ps.errorf(c.File, s.Pos, "", "store %q: secret name %q is not valid", id, k)
			}
		}
		v.storeFolders(s, appIDs)
		v.storeEdge(s)
	}
}

func frameworkHint(got string, have []string) string {
	if h := DidYouMean(got, have); h != "" {
		return h
	}
	if len(have) == 0 {
		return "no app in the config declares a framework"
	}
	return "frameworks with a base app: " + strings.Join(have, ", ")
}

// storeFolders warns about folders in a store directory that match no base app: a typo there silently overrides nothing.
func (v *validator) storeFolders(s *Store, appIDs map[string]bool) {
	if s.Dir == "" {
		return
	}
	entries, err := fs.ReadDir(v.fsys, s.Dir)
	if err != nil {
		return
	}
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range appIDs {
			if !yield(id) {
				return
			}
		}
	})
	for _, e := range entries {
		if !e.IsDir() || e.Name() == "stores" || strings.HasPrefix(e.Name(), ".") || appIDs[e.Name()] {
			continue
		}
		v.ps.warnf(path.Join(s.Dir, e.Name()), Pos{}, DidYouMean(e.Name(), ids), "folder matches no base app; its files are not composed")
	}
}

// schedules checks each schedule's cron, command and app, and names the unnamed.
func (v *validator) schedules() {
	c := v.c
	seen := map[string]bool{}
	for i, s := range c.Schedules {
		where := fmt.Sprintf("schedules[%d]", i)
		if s == nil {
			v.ps.errorf(c.File, Pos{}, "", "%s: empty", where)
			continue
		}
		if s.Name == "" {
			s.Name = fmt.Sprintf("cron-%d", i+1)
		}
		if !idRe.MatchString(s.Name) || seen[s.Name] {
			v.ps.errorf(c.File, s.Pos, "names are letters, digits, . _ - and unique", "%s: name %q is not a unique name", where, s.Name)
		}
		seen[s.Name] = true
		if _, err := ParseCron(s.Cron); err != nil {
			v.ps.errorf(c.File, s.Pos, "", "%s: cron %q: %v", where, s.Cron, err)
		}
		if strings.TrimSpace(s.Command) == "" {
			v.ps.errorf(c.File, s.Pos, "", "%s: missing key \"command\"", where)
		}
		if s.App != "" && c.App(s.App) == nil {
			v.ps.errorf(c.File, s.Pos, "use the id of an app under apps:", "%s: app %q is not an app", where, s.App)
		}
	}
}
