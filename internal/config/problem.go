package config

import (
	"fmt"
	"sort"
	"strings"
)

// Severity tells whether a Problem stops the job (Error) or is only reported (Warning).
type Severity int

const (
	// Error problems make the config invalid.
	Error Severity = iota
	// Warning problems are printed but do not fail validation.
	Warning
)

// Problem is one finding about the config, located at file:line:column when known.
type Problem struct {
	File     string   `json:"file"`
	Line     int      `json:"line,omitempty"`
	Column   int      `json:"column,omitempty"`
	Severity Severity `json:"-"`
	Message  string   `json:"message"`
	Hint     string   `json:"hint,omitempty"`
}

// Level is "error" or "warning".
func (p Problem) Level() string {
	if p.Severity == Warning {
		return "warning"
	}
	return "error"
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", p.Line, p.Column)
	}
	fmt.Fprintf(&b, ": %s: %s", p.Level(), p.Message)
	if p.Hint != "" {
		fmt.Fprintf(&b, " (%s)", p.Hint)
	}
	return b.String()
}

// ValidationError carries every error-level problem found in one pass.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	lines := make([]string, 0, len(e.Problems)+1)
	n := 0
	for _, p := range e.Problems {
		if p.Severity == Error {
			n++
		}
		lines = append(lines, p.String())
	}
	head := fmt.Sprintf("invalid configuration: %d error(s)", n)
	return head + "\n" + strings.Join(lines, "\n")
}

// problems collects findings while loading.
type problems struct {
	list []Problem
}

func (ps *problems) add(sev Severity, file string, pos Pos, hint, format string, args ...any) {
	ps.list = append(ps.list, Problem{File: file, Line: pos.Line, Column: pos.Column, Severity: sev, Message: fmt.Sprintf(format, args...), Hint: hint})
}

func (ps *problems) errorf(file string, pos Pos, hint, format string, args ...any) {
	ps.add(Error, file, pos, hint, format, args...)
}

func (ps *problems) warnf(file string, pos Pos, hint, format string, args ...any) {
	ps.add(Warning, file, pos, hint, format, args...)
}

func (ps *problems) hasErrors() bool {
	for _, p := range ps.list {
		if p.Severity == Error {
			return true
		}
	}
	return false
}

func (ps *problems) sorted() []Problem {
	out := append([]Problem(nil), ps.list...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	return out
}

// DidYouMean returns a hint naming the closest candidate, or "".
func DidYouMean(got string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		d := levenshtein(strings.ToLower(got), strings.ToLower(c))
		if d < bestD {
			best, bestD = c, d
		}
	}
	limit := len(got)/3 + 1
	if limit > 4 {
		limit = 4
	}
	if best == "" || bestD > limit {
		return ""
	}
	return fmt.Sprintf("did you mean %q?", best)
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
