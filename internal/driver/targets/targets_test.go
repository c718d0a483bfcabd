package targets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/slipway-dev/slipway/internal/driver"
)

// fake is a tiny in-memory driver.
type fake struct {
	name  string
	insts map[string]driver.Instance
}

func (f *fake) Capabilities() driver.Capabilities { return driver.Capabilities{Name: f.name} }
func (f *fake) Start(_ context.Context, s driver.Spec) (driver.Instance, error) {
	in := driver.Instance{ID: fmt.Sprintf("%s-%d", f.name, len(f.insts)+1), Name: s.Name, Labels: s.Labels, State: "running", Addr: "127.0.0.1:1"}
	f.insts[in.ID] = in
	return in, nil
}
func (f *fake) Stop(_ context.Context, id string) error { delete(f.insts, id); return nil }
func (f *fake) List(_ context.Context, m map[string]string) ([]driver.Instance, error) {
	var out []driver.Instance
	for _, in := range f.insts {
		if driver.Matches(in.Labels, m) {
			out = append(out, in)
		}
	}
	return out, nil
}
func (f *fake) Run(context.Context, driver.RunSpec) (int, error)    { return 0, nil }
func (f *fake) Logs(context.Context, string, io.Writer, bool) error { return nil }

func TestRoutesStoresToTheirTargets(t *testing.T) {
	us, def := &fake{name: "swarm", insts: map[string]driver.Instance{}}, &fake{name: "process", insts: map[string]driver.Instance{}}
	opened := map[string]int{}
	d := New([]string{"us-east-1", "eu-west-1", "default"}, "default",
		map[string]driver.Capabilities{"us-east-1": {Name: "swarm", Restart: true}, "eu-west-1": {Name: "docker", Restart: true}, "default": {Name: "process"}},
		func(_ context.Context, name string) (driver.Driver, error) {
			opened[name]++
			switch name {
			case "us-east-1":
				return us, nil
			case "default":
				return def, nil
			}
			return nil, errors.New("dial tcp 10.0.0.9:2376: connection refused")
		},
		func(store string) (string, error) {
			return map[string]string{"us": "us-east-1", "eu": "eu-west-1"}[store] + map[bool]string{true: "default"}[store == "ap"], nil
		})
	ctx := context.Background()
	spec := func(store string) driver.Spec {
		return driver.Spec{Name: store + "-web", Labels: driver.ManagedLabels("p", store, "web", "r1", "web")}
	}
	a, err := d.Start(ctx, spec("us"))
	if err != nil || !strings.HasPrefix(a.ID, "us-east-1:") || len(us.insts) != 1 {
		t.Fatalf("us: %+v %v (swarm fake has %d)", a, err, len(us.insts))
	}
	if _, err := d.Start(ctx, spec("ap")); err != nil || len(def.insts) != 1 {
		t.Fatalf("ap on the default target: %v", err)
	}
	_, err = d.Start(ctx, spec("eu"))
	if err == nil || !strings.Contains(err.Error(), "target eu-west-1 is unreachable") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("eu on an unreachable target: %v, want an error naming the target and the cause", err)
	}
	// Failures are remembered for a while: the next store does not wait on a dial again.
	d.Start(ctx, spec("eu"))
	if opened["eu-west-1"] != 1 {
		t.Errorf("the unreachable target was dialled %d times in a row", opened["eu-west-1"])
	}
	var skipped []string
	d.OnError = func(t string, _ error) { skipped = append(skipped, t) }
	got, err := d.List(ctx, nil)
	if err != nil || len(got) != 2 || strings.Join(skipped, ",") != "eu-west-1" {
		t.Errorf("List = %+v, %v (skipped %v): want both reachable instances and eu-west-1 skipped", got, err, skipped)
	}
	if err := d.Stop(ctx, a.ID); err != nil || len(us.insts) != 0 {
		t.Errorf("Stop(%s): %v; swarm fake still has %d", a.ID, err, len(us.insts))
	}
	if c := d.Capabilities(); c.Restart || !strings.Contains(c.Name, "us-east-1=swarm") {
		t.Errorf("Capabilities = %+v: a process target needs supervision, so Restart must be false", c)
	}
}
