package config

import (
	"strings"
	"testing"
	"time"
)

func TestCron(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, c := range []struct{ spec, from, want string }{
		{"*/5 * * * *", "2026-12-01 08:03", "2026-12-01 08:05"},
		{"0 3 * * *", "2026-12-01 08:03", "2026-12-02 03:00"},
		{"30 9 1 * *", "2026-12-01 09:30", "2027-01-01 09:30"},
		{"0 0 * * 0", "2026-12-01 08:00", "2026-12-06 00:00"}, // next Sunday
		{"15,45 8-9 * * *", "2026-12-01 08:20", "2026-12-01 08:45"},
	} {
		cr, err := ParseCron(c.spec)
		if err != nil {
			t.Fatalf("%s: %v", c.spec, err)
		}
		if got := cr.Next(at(c.from)); !got.Equal(at(c.want)) {
			t.Errorf("%s after %s: %s, want %s", c.spec, c.from, got.Format("2006-01-02 15:04"), c.want)
		}
	}
	if cr, _ := ParseCron("@every 2s"); cr.Next(at("2026-12-01 08:00")).Sub(at("2026-12-01 08:00")) != 2*time.Second {
		t.Errorf("@every")
	}
	for spec, want := range map[string]string{"* * *": "want 5 fields", "61 * * * *": "minute field", "*/0 * * * *": "step", "@every 1ms": "at least 1s", "* * * 13 *": "month field"} {
		if _, err := ParseCron(spec); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", spec, err, want)
		}
	}
}
