package config

import (
	"errors"
	"strings"
	"testing"
)

const targetsBase = `project: shop
apps:
  - {id: web, path: apps/web, framework: next}
stores:
  us: {projectName: us, region: us-east-1, framework: next}
  eu: {projectName: eu, region: eu-west-1, framework: next}
  ap: {projectName: ap, region: ap-south-1, framework: next}
`

func loadTargets(t *testing.T, targets string) (*Config, error) {
	t.Helper()
	root := t.TempDir()
	write(t, root, map[string]string{
		"slipway.yaml":          targetsBase + targets,
		"apps/web/package.json": "{}", "apps/stores/us/": "", "apps/stores/eu/": "", "apps/stores/ap/": "",
	})
	return Load(root, "")
}

func TestTargets(t *testing.T) {
	cfg, err := loadTargets(t, `targets:
  us-east-1: {driver: swarm, docker: "ssh://deploy@us-manager.example.com", constraints: ["node.role==worker"], cpus: "0.5", memoryMB: 256,
              volume: {driver: local, options: {type: nfs, o: "addr=10.0.0.5,rw", device: ":/export"}}}
  eu-west-1: {driver: docker, docker: "ssh://deploy@eu1.example.com"}
  default:   {driver: process}
`)
	if err != nil {
		t.Fatal(err)
	}
	for store, want := range map[string]string{"us": "us-east-1/swarm", "eu": "eu-west-1/docker", "ap": "default/process"} {
		n, tg, ok := cfg.TargetFor(store)
		if !ok || n+"/"+tg.Driver != want {
			t.Errorf("TargetFor(%s) = %s %+v %v, want %s", store, n, tg, ok, want)
		}
	}
	us := cfg.Targets["us-east-1"]
	if us.CPULimit() != 0.5 || us.MemoryMB != 256 || us.Volume.Options["type"] != "nfs" {
		t.Errorf("us-east-1 = %+v", us)
	}
	none, _ := loadTargets(t, "")
	if _, _, ok := none.TargetFor("us"); ok {
		t.Errorf("without targets: TargetFor says a target applies")
	}
}

func TestTargetErrorsNameTheLine(t *testing.T) {
	cases := map[string]struct{ targets, want string }{
		"no target for a region": {"targets:\n  us-east-1: {driver: process}\n  eu-west-1: {driver: process}\n",
			`slipway.yaml:7:3: error: store "ap": region "ap-south-1" has no target`},
		"unknown driver": {"targets:\n  default: {driver: swram}\n",
			`slipway.yaml:9:3: error: targets.default: unknown driver "swram"`},
		"docker on process": {"targets:\n  default: {driver: process, docker: \"tcp://x:2375\"}\n",
			`targets.default: docker: only goes with driver docker or swarm`},
		"password": {"targets:\n  default: {driver: docker, docker: \"tcp://u:pw@x:2375\"}\n",
			`the address holds a password`},
		"swarm setting on docker": {"targets:\n  default: {driver: docker, replicas: 2}\n",
			`are swarm settings (driver is docker)`},
		"bad cpus": {"targets:\n  default: {driver: swarm, cpus: lots}\n",
			`cpus "lots": want a positive number`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := loadTargets(t, c.targets)
			var ve *ValidationError
			if !errors.As(err, &ve) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v\nwant an error containing %q", err, c.want)
			}
		})
	}
}
