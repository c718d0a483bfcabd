package api

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/slipway-dev/slipway/internal/config"
)

// LayoutHost is the registry name of images in serve's own store.
const LayoutHost = "slipway.local"

// Validate checks a request against the config it will run with: the CLI
// runs it before sending, serve again at the API boundary. Errors are
// *FieldError naming the field; a request that fails changes nothing.
func (r *JobRequest) Validate(cfg *config.Config, l Limits) error {
	if err := r.checkStores(cfg); err != nil {
		return err
	}
	if !slices.Contains(Kinds, r.Kind) {
		return Fieldf("kind", "%q is not a job kind: use %s", r.Kind, strings.Join(Kinds, ", "))
	}
	if err := CheckCommit("commit", r.Commit); err != nil {
		return err
	}
	if r.To != "" && r.Kind != KindRollback {
		return Fieldf("to", "only a rollback takes a target")
	}
	if err := CheckCommit("to", r.To); err != nil {
		return err
	}
	if err := r.checkImages(cfg, l); err != nil {
		return err
	}
	if err := r.checkInstances(cfg, l); err != nil {
		return err
	}
	if err := r.checkDestructive(cfg); err != nil {
		return err
	}
	if err := r.checkSecrets(); err != nil {
		return err
	}
	return r.checkHooks()
}

func (r *JobRequest) checkStores(cfg *config.Config) error {
	if len(r.Stores) == 0 {
		return Fieldf("stores", "no store: name at least one")
	}
	if len(r.Stores) > MaxStores {
		return Fieldf("stores", "more than %d stores", MaxStores)
	}
	seen := map[string]bool{}
	for i, id := range r.Stores {
		f := fmt.Sprintf("stores[%d]", i)
		if err := CheckID(f, id); err != nil {
			return err
		}
		st := cfg.Store(id)
		if st == nil {
			hint := ""
			if h := config.DidYouMean(id, cfg.StoreIDs()); h != "" {
				hint = " (" + h + ")"
			}
			return Fieldf(f, "no store %q in %s%s", id, cfg.File, hint)
		}
		if !st.Deployable() {
			return Fieldf(f, "store %q is a template: it is not deployed on its own", id)
		}
		if seen[id] {
			return Fieldf(f, "store %q is named twice", id)
		}
		seen[id] = true
	}
	return nil
}

func (r *JobRequest) checkImages(cfg *config.Config, l Limits) error {
	if r.Kind != KindBuildDeploy {
		if len(r.Images) > 0 {
			return Fieldf("images", "a %s job deploys images serve already knows: send none", r.Kind)
		}
		return nil
	}
	have := map[string]bool{}
	for i, im := range r.Images {
		f := fmt.Sprintf("images[%d]", i)
		if !slices.Contains(r.Stores, im.Store) {
			return Fieldf(f+".store", "store %q is not one of the request's stores", im.Store)
		}
		if !slices.ContainsFunc(cfg.AppsFor(im.Store), func(a *config.App) bool { return a.ID == im.App }) {
			return Fieldf(f+".app", "store %s has no app %q", im.Store, im.App)
		}
		key := im.Store + "/" + im.App
		if have[key] {
			return Fieldf(f, "a second image for %s", key)
		}
		have[key] = true
		if err := CheckImageRef(f, im, l); err != nil {
			return err
		}
	}
	for _, id := range r.Stores {
		for _, a := range cfg.AppsFor(id) {
			if !have[id+"/"+a.ID] {
				return Fieldf("images", "no image for app %s of store %s", a.ID, id)
			}
		}
	}
	return nil
}

// CheckImageRef validates one pushed image: a reference that parses, from
// serve's own store or a registry the server allows, and a sha256 digest.
func CheckImageRef(f string, im ImageRef, l Limits) error {
	if im.Ref == "" || len(im.Ref) > MaxRefLen {
		return Fieldf(f+".ref", "an image reference of 1 to %d characters is needed", MaxRefLen)
	}
	if strings.Contains(im.Ref, ":/") || strings.HasPrefix(im.Ref, "/") || strings.HasPrefix(im.Ref, ".") {
		return Fieldf(f+".ref", "%q is not a registry reference: serve runs images from its own store or an allowed registry only", im.Ref)
	}
	ref, err := name.ParseReference(im.Ref, name.StrictValidation)
	if err != nil {
		return Fieldf(f+".ref", "%v", err)
	}
	if im.Digest != "" && !digestRe.MatchString(im.Digest) {
		return Fieldf(f+".digest", "%q is not a sha256 digest", im.Digest)
	}
	if d, ok := ref.(name.Digest); ok && im.Digest != "" && d.DigestStr() != im.Digest {
		return Fieldf(f+".digest", "%s does not match the reference's digest %s", im.Digest, d.DigestStr())
	}
	if _, isDigest := ref.(name.Digest); !isDigest && im.Digest == "" && ref.Context().RegistryStr() == LayoutHost {
		return Fieldf(f+".digest", "an image of serve's own store needs its digest")
	}
	if !RegistryAllowed(ref, l) {
		return Fieldf(f+".ref", "registry %s is not allowed: serve deploys from its own store (%s) or the registries of --allow-registry and the config's registry", ref.Context().RegistryStr(), LayoutHost)
	}
	return nil
}

// RegistryAllowed reports whether ref lives in serve's own store or under an allowed registry.
func RegistryAllowed(ref name.Reference, l Limits) bool {
	repo := ref.Context()
	if repo.RegistryStr() == LayoutHost {
		return true
	}
	full := repo.RegistryStr() + "/" + repo.RepositoryStr()
	for _, r := range l.Registries {
		r = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(r, "https://"), "http://"), "/")
		if r == "" {
			continue
		}
		if full == r || strings.HasPrefix(full, r+"/") || (!strings.Contains(r, "/") && repo.RegistryStr() == r) {
			return true
		}
		// Docker Hub's canonical name is index.docker.io.
		if (r == "docker.io" || r == "index.docker.io") && repo.RegistryStr() == name.DefaultRegistry {
			return true
		}
	}
	return false
}

func (r *JobRequest) checkInstances(cfg *config.Config, l Limits) error {
	for _, app := range slices.Sorted(maps.Keys(r.Instances)) {
		n := r.Instances[app]
		f := "instances." + app
		if err := CheckID(f, app); err != nil {
			return err
		}
		if cfg.App(app) == nil {
			return Fieldf(f, "no app %q in %s", app, cfg.File)
		}
		if n < 1 || n > l.Max() {
			return Fieldf(f, "%d instances: use 1 to %d", n, l.Max())
		}
	}
	return nil
}

func (r *JobRequest) checkDestructive(cfg *config.Config) error {
	if !r.Destructive {
		if r.Confirm != "" {
			return Fieldf("confirm", "only goes with destructive")
		}
		return nil
	}
	if r.Kind != KindBuildDeploy && r.Kind != KindDeployOnly {
		return Fieldf("destructive", "a %s job never runs the destructive pipeline", r.Kind)
	}
	for i, id := range r.Stores {
		if cfg.Store(id).Protected && r.Confirm != id {
			return Fieldf(fmt.Sprintf("stores[%d]", i), "store %s is protected: a destructive deploy empties its data; confirm with its id", id)
		}
	}
	return nil
}

func (r *JobRequest) checkSecrets() error {
	if len(r.Secrets) > MaxSecrets {
		return Fieldf("secrets", "more than %d secrets", MaxSecrets)
	}
	for _, k := range slices.Sorted(maps.Keys(r.Secrets)) {
		if !envRe.MatchString(k) || len(k) > 128 {
			return Fieldf("secrets", "%q is not an env name", clip(k))
		}
		if v := r.Secrets[k]; len(v) > MaxSecretBytes || strings.IndexByte(v, 0) >= 0 {
			// Never echo a secret value.
			return Fieldf("secrets."+k, "the value is longer than %d bytes or holds a NUL byte", MaxSecretBytes)
		}
	}
	return nil
}

func (r *JobRequest) checkHooks() error {
	for _, k := range slices.Sorted(maps.Keys(r.Hooks)) {
		if !slices.Contains(HookVars, k) {
			return Fieldf("hooks", "%q is not a hook variable: use %s", clip(k), strings.Join(HookVars, ", "))
		}
		if v := r.Hooks[k]; len(v) > MaxHookBytes || strings.IndexByte(v, 0) >= 0 {
			return Fieldf("hooks."+k, "longer than %d bytes or holds a NUL byte", MaxHookBytes)
		}
		if r.Kind == KindRollback || r.Kind == KindRestart {
			return Fieldf("hooks."+k, "a %s job runs no hooks", r.Kind)
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
