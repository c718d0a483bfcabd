package dockerbuild

import (
	"encoding/json"
	"fmt"
	"strings"

	controlapi "github.com/moby/buildkit/api/services/control"
)

// progress turns BuildKit's status updates into plain lines: each step
// once when it starts (CACHED when it was), its output, and its error.
type progress struct {
	line    func(string)
	started map[string]bool
	names   map[string]string
	partial map[string]string // a step's output not yet ended by a newline
}

func (p *progress) trace(aux json.RawMessage) {
	var raw []byte
	if json.Unmarshal(aux, &raw) != nil {
		return
	}
	var st controlapi.StatusResponse
	if st.UnmarshalVT(raw) != nil {
		return
	}
	if p.started == nil {
		p.started, p.names, p.partial = map[string]bool{}, map[string]string{}, map[string]string{}
	}
	for _, v := range st.Vertexes {
		p.names[v.Digest] = v.Name
		switch {
		case v.Cached && !p.started[v.Digest]:
			p.started[v.Digest] = true
			p.line("CACHED " + v.Name)
		case v.Started != nil && !p.started[v.Digest]:
			p.started[v.Digest] = true
			p.line(v.Name)
		}
		if v.Error != "" {
			p.line(fmt.Sprintf("ERROR %s: %s", v.Name, v.Error))
		}
	}
	for _, l := range st.Logs {
		text := p.partial[l.Vertex] + string(l.Msg)
		lines := strings.Split(text, "\n")
		p.partial[l.Vertex] = lines[len(lines)-1]
		for _, s := range lines[:len(lines)-1] {
			p.line("  " + strings.TrimRight(s, "\r"))
		}
	}
}

func (p *progress) flush() {
	for _, s := range p.partial {
		if s != "" {
			p.line("  " + s)
		}
	}
}
