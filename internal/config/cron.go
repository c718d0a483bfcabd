package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Cron is a parsed schedule: five fields (minute hour day-of-month month
// day-of-week, each `*`, `N`, `A-B`, a list of those, with `/STEP`), or
// `@every DURATION` (at least one second).
type Cron struct {
	every  time.Duration
	fields [5]map[int]bool // nil = any
	dom    bool            // day-of-month was restricted
	dow    bool
}

var cronRanges = [5][2]int{{0, 59}, {0, 23}, {1, 31}, {1, 12}, {0, 6}}

// ParseCron parses spec; the error says which field is wrong.
func ParseCron(spec string) (*Cron, error) {
	spec = strings.TrimSpace(spec)
	if d, ok := strings.CutPrefix(spec, "@every "); ok {
		every, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil || every < time.Second {
			return nil, fmt.Errorf("@every wants a duration of at least 1s, e.g. @every 30s")
		}
		return &Cron{every: every}, nil
	}
	f := strings.Fields(spec)
	if len(f) != 5 {
		return nil, fmt.Errorf("want 5 fields (minute hour day-of-month month day-of-week), e.g. \"*/5 * * * *\"; got %d", len(f))
	}
	c := &Cron{}
	names := [5]string{"minute", "hour", "day-of-month", "month", "day-of-week"}
	for i, v := range f {
		set, err := cronField(v, cronRanges[i][0], cronRanges[i][1])
		if err != nil {
			return nil, fmt.Errorf("%s field %q: %w", names[i], v, err)
		}
		c.fields[i] = set
	}
	c.dom, c.dow = c.fields[2] != nil, c.fields[4] != nil
	return c, nil
}

func cronField(v string, lo, hi int) (map[int]bool, error) {
	if v == "*" {
		return nil, nil
	}
	set := map[int]bool{}
	for _, part := range strings.Split(v, ",") {
		rng, stepS, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepS)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("step %q is not a positive number", stepS)
			}
			step = n
		}
		a, b := lo, hi
		if rng != "*" {
			as, bs, isRange := strings.Cut(rng, "-")
			var err error
			if a, err = strconv.Atoi(as); err != nil {
				return nil, fmt.Errorf("%q is not a number", as)
			}
			b = a
			if isRange {
				if b, err = strconv.Atoi(bs); err != nil {
					return nil, fmt.Errorf("%q is not a number", bs)
				}
			} else if hasStep {
				b = hi
			}
		}
		if a < lo || b > hi || a > b {
			return nil, fmt.Errorf("%d-%d is outside %d-%d", a, b, lo, hi)
		}
		for n := a; n <= b; n += step {
			set[n] = true
		}
	}
	return set, nil
}

func (c *Cron) matches(t time.Time) bool {
	in := func(i, v int) bool { return c.fields[i] == nil || c.fields[i][v] }
	if !in(0, t.Minute()) || !in(1, t.Hour()) || !in(3, int(t.Month())) {
		return false
	}
	dom, dow := in(2, t.Day()), in(4, int(t.Weekday()))
	if c.dom && c.dow {
		return dom || dow // cron's rule when both are restricted
	}
	return dom && dow
}

// Next is the first time after t the schedule fires.
func (c *Cron) Next(t time.Time) time.Time {
	if c.every > 0 {
		return t.Add(c.every)
	}
	n := t.Truncate(time.Minute).Add(time.Minute)
	for i := 0; i < 366*24*60; i++ { // a year of minutes bounds impossible dates (Feb 31)
		if c.matches(n) {
			return n
		}
		n = n.Add(time.Minute)
	}
	return time.Time{}
}
