package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Pos is a 1-based line and column in the config file.
type Pos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
}

func posOf(n *yaml.Node) Pos {
	if n == nil {
		return Pos{}
	}
	return Pos{Line: n.Line, Column: n.Column}
}

// Duration is a time.Duration written as "5s", "250ms" or "1m" in config files.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText lets Duration print as "5s" in JSON output.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// nodeDecoder is a type that reads its own YAML (a value that may be a
// scalar or a mapping).
type nodeDecoder interface {
	decodeNode(d *decoder, n *yaml.Node, where string)
}

var (
	posType      = reflect.TypeOf(Pos{})
	durationType = reflect.TypeOf(Duration(0))
)

// decoder maps a yaml.Node tree onto Go structs by their `yaml` tags, collecting
// every problem with its position instead of stopping at the first.
type decoder struct {
	file string
	ps   *problems
	// unknownSeverity is Error for slipway.yaml and Warning for files Slipway shares with other tools.
	unknownSeverity Severity
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, where string) {
	if n == nil {
		return
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), where)
		return
	}
	if v.CanAddr() {
		if nd, ok := v.Addr().Interface().(nodeDecoder); ok {
			nd.decodeNode(d, n, where)
			return
		}
	}
	switch {
	case v.Type() == durationType:
		if !d.expect(n, yaml.ScalarNode, where, "a duration such as 5s") {
			return
		}
		dur, err := time.ParseDuration(n.Value)
		if err != nil || dur < 0 {
			d.ps.errorf(d.file, posOf(n), `write it like "5s", "250ms" or "1m"`, "%s: %q is not a duration", where, n.Value)
			return
		}
		v.SetInt(int64(dur))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, where)
	case reflect.Map:
		d.decodeMap(n, v, where)
	case reflect.Slice:
		if !d.expect(n, yaml.SequenceNode, where, "a list") {
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", where, i))
		}
		v.Set(s)
	case reflect.String:
		if !d.expect(n, yaml.ScalarNode, where, "a string") {
			return
		}
		v.SetString(n.Value)
	case reflect.Int:
		if !d.expect(n, yaml.ScalarNode, where, "a number") {
			return
		}
		i, err := strconv.Atoi(n.Value)
		if err != nil {
			d.ps.errorf(d.file, posOf(n), "", "%s: %q is not a whole number", where, n.Value)
			return
		}
		v.SetInt(int64(i))
	case reflect.Bool:
		if !d.expect(n, yaml.ScalarNode, where, "true or false") {
			return
		}
		switch n.Value {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			d.ps.errorf(d.file, posOf(n), "use true or false", "%s: %q is not a boolean", where, n.Value)
		}
	default:
		panic(fmt.Sprintf("config decoder: unsupported kind %s", v.Kind()))
	}
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a single value"
	}
	return "something else"
}

func (d *decoder) expect(n *yaml.Node, k yaml.Kind, where, want string) bool {
	if n.Kind == k {
		return true
	}
	d.ps.errorf(d.file, posOf(n), "", "%s: expected %s, found %s", where, want, kindName(n.Kind))
	return false
}

func fieldName(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	if tag == "-" || !f.IsExported() {
		return ""
	}
	if name, _, _ := strings.Cut(tag, ","); name != "" {
		return name
	}
	return strings.ToLower(f.Name)
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, where string) {
	if !d.expect(n, yaml.MappingNode, where, "a mapping") {
		return
	}
	t := v.Type()
	fields := map[string]int{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Type == posType && f.Name == "Pos" {
			v.Field(i).Set(reflect.ValueOf(posOf(n)))
			continue
		}
		if name := fieldName(f); name != "" {
			fields[name] = i
			names = append(names, name)
		}
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := k.Value
		child := key
		if where != "" {
			child = where + "." + key
		}
		if prev, dup := seen[key]; dup {
			d.ps.errorf(d.file, posOf(k), fmt.Sprintf("first defined at line %d", prev.Line), "duplicate key %q", child)
			continue
		}
		seen[key] = k
		idx, ok := fields[key]
		if !ok {
			d.ps.add(d.unknownSeverity, d.file, posOf(k), DidYouMean(key, names), "unknown key %q", child)
			continue
		}
		d.decode(val, v.Field(idx), child)
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, where string) {
	if !d.expect(n, yaml.MappingNode, where, "a mapping") {
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	et := v.Type().Elem()
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := k.Value
		child := where + "." + key
		if prev, dup := seen[key]; dup {
			d.ps.errorf(d.file, posOf(k), fmt.Sprintf("first defined at line %d", prev.Line), "duplicate key %q", child)
			continue
		}
		seen[key] = k
		ev := reflect.New(et).Elem()
		d.decode(val, ev, child)
		// A struct value's position is its key's: that is where a reader looks for "stores.us".
		sv := ev
		if sv.Kind() == reflect.Pointer {
			if sv.IsNil() { // `us:` with nothing after it is an empty entry, not a missing one
				sv.Set(reflect.New(et.Elem()))
			}
			sv = sv.Elem()
		}
		if sv.Kind() == reflect.Struct {
			if f := sv.FieldByName("Pos"); f.IsValid() && f.Type() == posType {
				f.Set(reflect.ValueOf(posOf(k)))
			}
		}
		v.SetMapIndex(reflect.ValueOf(key), ev)
	}
}

var yamlLineRe = regexp.MustCompile(`line (\d+)(?:, column (\d+))?`)

// syntaxProblem turns a YAML/JSON parser error into a located Problem.
func syntaxProblem(file string, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	p := Problem{File: file, Severity: Error, Message: "syntax error: " + msg}
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		p.Column = 1
		if m[2] != "" {
			p.Column, _ = strconv.Atoi(m[2])
		}
		p.Message = "syntax error: " + strings.TrimSpace(yamlLineRe.ReplaceAllString(msg, ""))
		p.Message = strings.TrimSuffix(strings.TrimSuffix(p.Message, ":"), " at")
	}
	return p
}

// jsonSyntaxProblem locates an encoding/json error by its byte offset.
func jsonSyntaxProblem(file string, data []byte, err error) Problem {
	p := Problem{File: file, Severity: Error, Message: "syntax error: " + err.Error()}
	var se *json.SyntaxError
	off := int64(-1)
	if errors.As(err, &se) {
		off = se.Offset
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		off = te.Offset
	}
	if off >= 0 {
		if off > int64(len(data)) {
			off = int64(len(data))
		}
		before := data[:off]
		p.Line = bytes.Count(before, []byte("\n")) + 1
		p.Column = int(off) - (bytes.LastIndexByte(before, '\n') + 1)
		if p.Column < 1 {
			p.Column = 1
		}
	}
	return p
}
