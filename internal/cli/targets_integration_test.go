//go:build integration

package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/testenv"
)

// TestTargetsCommand checks a swarm manager with a labelled node, an engine
// that does not answer, and the local process runtime.
func TestTargetsCommand(t *testing.T) {
	if testenv.RequireSwarm(t, map[string]string{"region": "us-east-1"}) == nil {
		return
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"apps/web/index.txt": "web\n", "apps/stores/us/.keep": "", "apps/stores/eu/.keep": "", "apps/stores/ap/.keep": "",
		"slipway.yaml": `project: tg
apps:
  - {id: web, path: apps/web, framework: next}
stores:
  us: {projectName: us, region: us-east-1, framework: next}
  eu: {projectName: eu, region: eu-west-1, framework: next}
  ap: {projectName: ap, region: ap-south-1, framework: next}
targets:
  us-east-1: {driver: swarm, docker: "` + testenv.DockerHost() + `"}
  eu-west-1: {driver: docker, docker: "tcp://127.0.0.1:1"}
  default: {driver: process}
`})
	code, out, stderr := run(t, "targets", "-C", dir, "--json")
	if code != 1 {
		t.Fatalf("targets with an unreachable engine: exit %d, want 1\n%s\n%s", code, out, stderr)
	}
	var checks []targetCheck
	if err := json.Unmarshal([]byte(out), &checks); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	by := map[string]targetCheck{}
	for _, c := range checks {
		by[c.Target] = c
	}
	us, eu, def := by["us-east-1"], by["eu-west-1"], by["default"]
	if !us.Reachable || us.Info == nil || us.Info.Role != "manager" || len(us.Problems) > 0 || strings.Join(us.Stores, ",") != "us" {
		t.Errorf("us-east-1: %+v", us)
	} else if len(us.Info.Nodes) == 0 || us.Info.Nodes[0].Labels["region"] != "us-east-1" || us.Info.Version == "" {
		t.Errorf("us-east-1 nodes: %+v", us.Info)
	}
	if eu.Reachable || eu.Error == "" || strings.Join(eu.Stores, ",") != "eu" {
		t.Errorf("eu-west-1: %+v, want unreachable with the error", eu)
	}
	if !def.Reachable || strings.Join(def.Stores, ",") != "ap" {
		t.Errorf("default: %+v, want the process runtime with store ap", def)
	}
	_, table, _ := run(t, "targets", "-C", dir)
	for _, want := range []string{"TARGET", "us-east-1", "active/manager", "region=us-east-1", "no: "} {
		if !strings.Contains(table, want) {
			t.Errorf("the table lacks %q:\n%s", want, table)
		}
	}
}
