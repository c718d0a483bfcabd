package server

import (
	"context"
	"strings"
	"testing"
)

func TestEnvAPI(t *testing.T) {
	h := start(t, t.TempDir())
	c := NewClient(h.dir)
	ctx := context.Background()
	env, err := c.Env(ctx, "us")
	if err != nil || len(env) != 0 {
		t.Fatalf("empty env: %v %v", env, err)
	}
	r, err := c.ChangeEnv(ctx, "us", EnvChange{Set: map[string]string{"A": "1", "B": "two words\nand a line"}})
	if err != nil || r.Env["A"] != "1" || r.Env["B"] != "two words\nand a line" {
		t.Fatalf("set: %+v %v", r, err)
	}
	r, err = c.ChangeEnv(ctx, "us", EnvChange{Set: map[string]string{"C": ""}, Unset: []string{"A", "NOPE", "A"}})
	if err != nil || strings.Join(r.Removed, ",") != "A" || strings.Join(r.NotSet, ",") != "NOPE" || len(r.Env) != 2 || r.Env["C"] != "" {
		t.Fatalf("set and unset: %+v %v", r, err)
	}
	if env, _ := c.Env(ctx, "eu"); len(env) != 0 {
		t.Errorf("stores are separate: %v", env)
	}
	for _, bad := range []struct {
		store string
		ch    EnvChange
		err   string
	}{
		{"us", EnvChange{}, "nothing to change"},
		{"us", EnvChange{Set: map[string]string{"BAD-NAME": "x"}}, "not a valid env name"},
		{"us", EnvChange{Set: map[string]string{"PORT": "1"}}, "PORT is reserved"},
		{"us", EnvChange{Unset: []string{"SLIPWAY_APP"}}, "SLIPWAY_APP is reserved"},
		{"us", EnvChange{Set: map[string]string{"X": "a\x00b"}}, "NUL"},
		{"us", EnvChange{Set: map[string]string{"X": "1"}, Unset: []string{"X"}}, "both set and unset"},
		{"-us", EnvChange{Set: map[string]string{"X": "1"}}, "not a store id"},
	} {
		_, err := c.ChangeEnv(ctx, bad.store, bad.ch)
		if err == nil || !strings.Contains(err.Error(), bad.err) || !strings.Contains(err.Error(), "(400)") {
			t.Errorf("%+v: %v (want %q)", bad, err, bad.err)
		}
	}
	if env, _ := c.Env(ctx, "us"); len(env) != 2 || env["B"] == "" {
		t.Errorf("a refused change stored something: %v", env)
	}
}
