// Package export writes a store's live release as a docker-compose file or a
// Swarm stack file, so that it can run without Slipway: images by digest,
// the env (secrets as placeholders in an env_file), the /data volume and
// the ports. It is the way out, and Appliku's standalone mode.
package export

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Store is what the files describe.
type Store struct {
	Project, Store, Region string
	Release, Commit        string
	Apps                   []App
	// Secrets are env names whose values go in SecretsFile, never in the file.
	Secrets []string
	// SecretsFile is the env_file path the services read secrets from
	// (relative to the compose file).
	SecretsFile string
	// DataVolume is the name of the volume mounted at /data (the one the
	// docker runtime used, so an exported store keeps its data).
	DataVolume string
	// VolumeDriver and VolumeOptions configure the data volume (stack files;
	// "" is the local driver).
	VolumeDriver  string
	VolumeOptions map[string]string
}

// App is one service.
type App struct {
	Name  string
	Image string // digest reference
	Port  int    // inside the container; also the host port unless taken
	Env   map[string]string
}

type file struct {
	Version  string             `yaml:"version"`
	Services map[string]service `yaml:"services"`
	Volumes  map[string]volume  `yaml:"volumes,omitempty"`
}

type service struct {
	Image       string            `yaml:"image"`
	Restart     string            `yaml:"restart,omitempty"`
	Environment map[string]string `yaml:"environment,omitempty"`
	EnvFile     []string          `yaml:"env_file,omitempty"`
	Ports       []any             `yaml:"ports,omitempty"`
	Volumes     []string          `yaml:"volumes,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Deploy      *deploy           `yaml:"deploy,omitempty"`
}

type port struct {
	Target    int    `yaml:"target"`
	Published int    `yaml:"published"`
	Protocol  string `yaml:"protocol"`
	Mode      string `yaml:"mode"`
}

type deploy struct {
	Replicas      int               `yaml:"replicas"`
	RestartPolicy map[string]string `yaml:"restart_policy"`
	Placement     *placement        `yaml:"placement,omitempty"`
	Labels        map[string]string `yaml:"labels,omitempty"`
}

type placement struct {
	Constraints []string `yaml:"constraints"`
}

type volume struct {
	Name       string            `yaml:"name"`
	Driver     string            `yaml:"driver,omitempty"`
	DriverOpts map[string]string `yaml:"driver_opts,omitempty"`
	Labels     map[string]string `yaml:"labels,omitempty"`
}

// Compose renders a docker-compose file (format 3.8, which Debian's
// docker-compose 1.29 reads): one service per app, restarted unless
// stopped, published on the host.
func Compose(s Store) ([]byte, error) { return render(s, false) }

// Stack renders a Swarm stack file for `docker stack deploy`: the same
// services, each with one replica placed in the store's region, ports
// published in host mode (not through the routing mesh).
func Stack(s Store) ([]byte, error) { return render(s, true) }

func render(s Store, stack bool) ([]byte, error) {
	if len(s.Apps) == 0 {
		return nil, fmt.Errorf("export %s: no apps", s.Store)
	}
	f := file{Version: "3.8", Services: map[string]service{}}
	labels := map[string]string{"dev.slipway.project": s.Project, "dev.slipway.store": s.Store, "dev.slipway.release": s.Release}
	if s.DataVolume != "" {
		v := volume{Name: s.DataVolume, Labels: map[string]string{"dev.slipway.project": s.Project, "dev.slipway.store": s.Store}}
		if stack {
			v.Driver, v.DriverOpts = s.VolumeDriver, s.VolumeOptions
		}
		f.Volumes = map[string]volume{"data": v}
	}
	used := map[int]bool{}
	for _, a := range s.Apps {
		if _, dup := f.Services[a.Name]; dup {
			return nil, fmt.Errorf("export %s: app %s twice", s.Store, a.Name)
		}
		if !strings.Contains(a.Image, "@sha256:") {
			return nil, fmt.Errorf("export %s: app %s: image %q is not a digest reference", s.Store, a.Name, a.Image)
		}
		svc := service{Image: a.Image, Environment: escape(a.Env), Labels: labels}
		if len(s.Secrets) > 0 {
			svc.EnvFile = []string{s.SecretsFile}
		}
		if s.DataVolume != "" {
			svc.Volumes = []string{"data:/data"}
		}
		host := a.Port
		for used[host] {
			host++
		}
		used[host] = true
		if stack {
			svc.Ports = []any{port{Target: a.Port, Published: host, Protocol: "tcp", Mode: "host"}}
			svc.Deploy = &deploy{Replicas: 1, RestartPolicy: map[string]string{"condition": "any"}, Labels: labels}
			if s.Region != "" {
				svc.Deploy.Placement = &placement{Constraints: []string{"node.labels.region == " + s.Region}}
			}
		} else {
			svc.Restart = "unless-stopped"
			svc.Ports = []any{fmt.Sprintf("%d:%d", host, a.Port)}
		}
		f.Services[a.Name] = svc
	}
	var b bytes.Buffer
	kind, tool := "compose", "docker-compose up -d"
	if stack {
		kind, tool = "stack", "docker stack deploy -c FILE "+s.Store
	}
	fmt.Fprintf(&b, "# Written by `slipway export %s --store-id %s`: release %s (commit %s) of %s.\n", kind, s.Store, s.Release, short(s.Commit), s.Store)
	fmt.Fprintf(&b, "# Images are pinned by digest. Run it with: %s\n", tool)
	if len(s.Secrets) > 0 {
		fmt.Fprintf(&b, "# Secrets (%s) are read from %s: fill in their values there first.\n", strings.Join(sorted(s.Secrets), ", "), s.SecretsFile)
	}
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("export %s: %w", s.Store, err)
	}
	return b.Bytes(), enc.Close()
}

// escape doubles "$" so compose does not interpolate values.
func escape(env map[string]string) map[string]string {
	out := make(map[string]string, len(env))
	for k, v := range env {
		out[k] = strings.ReplaceAll(v, "$", "$$")
	}
	return out
}

// SecretsFile is the placeholder env_file: one NAME= line per secret, to fill in.
func SecretsFile(store string, names []string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Secrets of store %s for the exported compose/stack file: put each value after its =.\n", store)
	b.WriteString("# Keep this file out of version control (it is written with mode 0600).\n")
	for _, n := range sorted(names) {
		fmt.Fprintf(&b, "%s=\n", n)
	}
	return []byte(b.String())
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
