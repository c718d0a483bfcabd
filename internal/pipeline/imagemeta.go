package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-dev/slipway/internal/driver"
	"github.com/slipway-dev/slipway/internal/state"
)

// Build metadata serve reads back from an image's labels, so that every deploy
// (build, deploy-only, rollback, from the CLI, a webhook or the API) knows an
// image's process types and whether it can start in a container, from the
// image itself rather than from what a caller claims.
const (
	LabelBase               = "dev.slipway.base"
	LabelMissingInterpreter = "dev.slipway.missing-interpreter"
	LabelRelease            = "dev.slipway.release"
	LabelWebInstances       = "dev.slipway.web-instances"
	LabelProcesses          = "dev.slipway.processes"
)

// metaLabels are the build metadata labels of a unit's image.
func metaLabels(u *buildUnit, base, missing string) map[string]string {
	out := map[string]string{LabelBase: base}
	if missing != "" {
		out[LabelMissingInterpreter] = missing
	}
	if u.procs.release != "" {
		out[LabelRelease] = u.procs.release
	}
	if u.procs.webN > 0 {
		out[LabelWebInstances] = strconv.Itoa(u.procs.webN)
	}
	if len(u.procs.others) > 0 {
		b, _ := json.Marshal(u.procs.others)
		out[LabelProcesses] = string(b)
	}
	return out
}

// loadImageMeta fills each app of req from its image's labels (when the
// Deployer can read images): base, missing interpreter, process types with
// their images (derived from the app's image as the build derived them),
// the web process's instances, and the Procfile's release: as the install
// hook unless one is set (not for rollbacks, which run no hooks).
func (d *Deployer) loadImageMeta(ctx context.Context, req *DeployRequest) error {
	if d.ReadImage == nil {
		return nil
	}
	for i := range req.Apps {
		a := &req.Apps[i]
		img, err := d.ReadImage(ctx, *a)
		if err != nil {
			return fmt.Errorf("reading the image of %s: %w", a.App, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return fmt.Errorf("reading the image config of %s: %w", a.App, err)
		}
		l := cf.Config.Labels
		a.Base, a.MissingInterpreter = l[LabelBase], l[LabelMissingInterpreter]
		if n, err := strconv.Atoi(l[LabelWebInstances]); err == nil && a.Instances == 0 {
			a.Instances = n
		}
		if r := l[LabelRelease]; r != "" && req.Hooks.Install.Command == "" && req.Kind != state.KindRollback {
			req.Hooks.Install = Hook{Command: r, App: a.App}
		}
		a.Processes = nil
		if js := l[LabelProcesses]; js != "" {
			if a.Processes, err = derivedProcesses(img, js, a.Image); err != nil {
				return fmt.Errorf("%s: %w", a.App, err)
			}
		}
	}
	return nil
}

func derivedProcesses(img v1.Image, js string, web driver.Image) ([]Process, error) {
	var procs []ProcessImage
	if err := json.Unmarshal([]byte(js), &procs); err != nil {
		return nil, fmt.Errorf("label %s: %w", LabelProcesses, err)
	}
	at := strings.LastIndex(web.Ref, "@")
	if at < 0 {
		return nil, fmt.Errorf("image reference %s has no digest", web.Ref)
	}
	var out []Process
	for _, p := range procs {
		pimg, err := processImage(img, p)
		if err != nil {
			return nil, err
		}
		dig, err := pimg.Digest()
		if err != nil {
			return nil, err
		}
		out = append(out, Process{Name: p.Name, Command: p.Command, Instances: p.Instances,
			Image: driver.Image{Ref: web.Ref[:at+1] + dig.String(), Insecure: web.Insecure}})
	}
	return out, nil
}
