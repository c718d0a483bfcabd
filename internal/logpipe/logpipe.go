// Package logpipe is the helper process that carries the output of the
// process runtime's instances to their log files (the keeper, keeper.go): it
// replaces secret values with [REDACTED], stamps each line with the time and
// appends it to the instance's file. So no secret an app prints reaches the
// disk, and the helper outlives a restart of Slipway as the instances do.
//
// The helper is the slipway binary itself, started with Env=1. It is
// dispatched from this package's init, which the Go runtime runs after only
// the few standard packages this one imports, and exits there, before the
// rest of the binary's packages (cobra, the registry, protobuf, SQLite: ~240
// inits, ~20 MB touched) initialise. Keep the imports of this package and of
// internal/redact to small standard packages, or that gain is lost.
package logpipe

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"strings"
	"time"

	"github.com/slipway-dev/slipway/internal/redact"
)

// Env switches a binary that links this package into log-pipe mode ("1").
const Env = "SLIPWAY_PROCESS_LOGPIPE"

// StampLayout is the fixed-width UTC time at the start of every stored line.
const StampLayout = "2006-01-02T15:04:05.000000000Z"

// maxLine bounds a stored line; longer output is split.
const maxLine = 64 << 10

func init() {
	if os.Getenv(Env) == "1" {
		os.Exit(runKeeper())
	}
}

// EncodeSecrets is what the starter writes on the helper's secrets fd.
func EncodeSecrets(secrets []string) string {
	var b strings.Builder
	for _, s := range secrets {
		b.WriteString(base64.StdEncoding.EncodeToString([]byte(s)))
		b.WriteByte('\n')
	}
	return b.String()
}

// SecretValues decodes EncodeSecrets. A multi-line secret is also masked
// line by line, since the helper redacts one line at a time.
func SecretValues(raw []byte) []string {
	var out []string
	for _, l := range bytes.Split(raw, []byte("\n")) {
		v, err := base64.StdEncoding.DecodeString(string(l))
		if err != nil || len(v) == 0 {
			continue
		}
		out = append(out, string(v))
		if bytes.ContainsAny(v, "\r\n") {
			for _, part := range strings.FieldsFunc(string(v), func(r rune) bool { return r == '\n' || r == '\r' }) {
				out = append(out, part)
			}
		}
	}
	return out
}

// Pipe copies lines from r to w, redacted and stamped, until r ends.
func Pipe(r io.Reader, w io.Writer, red *redact.Redactor, now func() time.Time) {
	br := bufio.NewReaderSize(r, maxLine)
	var buf []byte
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			buf = buf[:0]
			buf = now().UTC().AppendFormat(buf, StampLayout)
			buf = append(buf, ' ')
			buf = append(buf, red.String(string(bytes.TrimRight(line, "\n")))...)
			buf = append(buf, '\n')
			w.Write(buf)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}
