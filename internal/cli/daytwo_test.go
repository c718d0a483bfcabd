package cli

import "testing"

func TestParseScale(t *testing.T) {
	got, err := parseScale([]string{"web=3", "api=1"})
	if err != nil || got["web"] != 3 || got["api"] != 1 {
		t.Errorf("parseScale: %v %v", got, err)
	}
	for _, bad := range []string{"web", "=2", "web=0", "web=33", "web=x"} {
		if _, err := parseScale([]string{bad}); err == nil {
			t.Errorf("parseScale(%q) accepted", bad)
		}
	}
}
