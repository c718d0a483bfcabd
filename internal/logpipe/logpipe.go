// Package logpipe is the helper process that carries an instance's output of
// the process runtime to its log file: it replaces secret values with
// [REDACTED], stamps each line with the time and appends it to the file. So
// no secret an app prints reaches the disk, and the helper outlives a restart
// of Slipway as the instance does.
//
// The helper is the slipway binary itself, started with Env=1. It must cost
// little, since every instance start runs one: it is dispatched from this
// package's init, which the Go runtime runs after only the few standard
// packages this one imports, and exits there, before the rest of the
// binary's packages (cobra, the registry, protobuf, SQLite: ~240 inits,
// ~20 MB touched) initialise. Keep the imports of this package and of
// internal/redact to small standard packages, or that gain is lost.
package logpipe

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/slipway-dev/slipway/internal/redact"
)

// Env switches a binary that links this package into log-pipe mode ("1").
const Env = "SLIPWAY_PROCESS_LOGPIPE"

// StampLayout is the fixed-width UTC time at the start of every stored line.
const StampLayout = "2006-01-02T15:04:05.000000000Z"

// maxLine bounds a stored line; longer output is split.
const maxLine = 64 << 10

// The fds the helper is started with, besides stdin (the app's output).
const (
	logFD     = 3 // the log file, opened O_APPEND
	secretsFD = 4 // the secrets, base64, one a line; closed by the writer
)

func init() {
	if os.Getenv(Env) == "1" {
		os.Exit(run())
	}
}

// run is the helper's main. It ignores SIGTERM (to catch the app's last
// words: it runs in the app's process group) and ends when the app's output
// closes, or with the group's SIGKILL.
func run() int {
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGPIPE)
	logf := os.NewFile(logFD, "log")
	sec := os.NewFile(secretsFD, "secrets")
	raw, err := io.ReadAll(io.LimitReader(sec, 16<<20))
	sec.Close()
	if err != nil {
		os.Stderr.WriteString("slipway log pipe: reading secrets: " + err.Error() + "\n")
		return 1
	}
	red := redact.New(SecretValues(raw)...)
	Pipe(os.Stdin, logf, red, time.Now)
	return 0
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
