package pipeline

import "strings"

// quietToolDefaults are set in every build's environment unless it sets
// them: the frameworks' telemetry (a network call at the end of each build,
// which only costs time here) and npm's update check are off.
var quietToolDefaults = []string{
	"NEXT_TELEMETRY_DISABLED=1",
	"NUXT_TELEMETRY_DISABLED=1",
	"npm_config_update_notifier=false",
}

// withQuietTools adds quietToolDefaults that env does not set.
func withQuietTools(env []string) []string {
	has := map[string]bool{}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		has[strings.ToLower(k)] = true
	}
	for _, kv := range quietToolDefaults {
		k, _, _ := strings.Cut(kv, "=")
		if !has[strings.ToLower(k)] {
			env = append(env, kv)
		}
	}
	return env
}
