package pipeline

import (
	"slices"
	"testing"
)

func TestQuietToolDefaultsKeepTheCallersChoice(t *testing.T) {
	env := withQuietTools([]string{"PATH=/bin", "NEXT_TELEMETRY_DISABLED=0"})
	if !slices.Contains(env, "NEXT_TELEMETRY_DISABLED=0") || slices.Contains(env, "NEXT_TELEMETRY_DISABLED=1") {
		t.Errorf("the environment's NEXT_TELEMETRY_DISABLED was overridden: %v", env)
	}
	for _, kv := range []string{"NUXT_TELEMETRY_DISABLED=1", "npm_config_update_notifier=false"} {
		if !slices.Contains(env, kv) {
			t.Errorf("%s missing: %v", kv, env)
		}
	}
}
