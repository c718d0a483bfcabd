package process

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/slipway-dev/slipway/internal/redact"
)

// An instance's output does not go straight to its log file: it goes through
// a pipe to a small helper process (this binary again, in log-pipe mode),
// which replaces secret values with [REDACTED], stamps each line with the
// time and appends it to the file. So no secret an app prints reaches the
// disk, and the helper outlives a restart of Slipway as the instance does:
// it runs in the instance's process group, ignores SIGTERM (to catch the
// app's last words) and ends when the app's output closes, or with the
// group's SIGKILL.

// logPipeEnv switches a binary that links this package into log-pipe mode.
const logPipeEnv = "SLIPWAY_PROCESS_LOGPIPE"

// stampLayout is the fixed-width UTC time at the start of every stored line.
const stampLayout = "2006-01-02T15:04:05.000000000Z"

// maxLine bounds a stored line; longer output is split.
const maxLine = 64 << 10

func init() {
	if os.Getenv(logPipeEnv) == "1" {
		os.Exit(runLogPipe())
	}
}

// startLogPipe starts the helper for the instance whose process group is
// pgid, reading out (the read end of its output pipe) and appending to logf.
// Secrets are handed over on a pipe, never in argv or the environment.
func startLogPipe(out, logf *os.File, pgid int, secrets []string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("starting the log pipe: %w", err)
	}
	sr, sw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("starting the log pipe: %w", err)
	}
	defer sr.Close()
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        []string{exe},
		Env:         []string{logPipeEnv + "=1"},
		Stdin:       out,
		ExtraFiles:  []*os.File{logf, sr},
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pgid: pgid},
	}
	if err := cmd.Start(); err != nil {
		sw.Close()
		return nil, fmt.Errorf("starting the log pipe: %w", err)
	}
	var b strings.Builder
	for _, s := range secrets {
		b.WriteString(base64.StdEncoding.EncodeToString([]byte(s)))
		b.WriteByte('\n')
	}
	_, err = io.WriteString(sw, b.String())
	if cerr := sw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("starting the log pipe: %w", err)
	}
	go cmd.Wait() // reap it; it ends with the instance
	return cmd, nil
}

// runLogPipe is the helper's main: stdin is the app's output, fd 3 the log
// file, fd 4 the secrets (base64, one a line).
func runLogPipe() int {
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGPIPE)
	logf := os.NewFile(3, "log")
	sec := os.NewFile(4, "secrets")
	raw, err := io.ReadAll(io.LimitReader(sec, 16<<20))
	sec.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "slipway log pipe: reading secrets:", err)
		return 1
	}
	red := redact.New(secretValues(raw)...)
	pipeLines(os.Stdin, logf, red, time.Now)
	return 0
}

// secretValues decodes the helper's secrets. A multi-line secret is also
// masked line by line, since the helper redacts one line at a time.
func secretValues(raw []byte) []string {
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

// pipeLines copies lines from r to w, redacted and stamped, until r ends.
func pipeLines(r io.Reader, w io.Writer, red *redact.Redactor, now func() time.Time) {
	br := bufio.NewReaderSize(r, maxLine)
	var buf []byte
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			buf = buf[:0]
			buf = append(buf, now().UTC().Format(stampLayout)...)
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

// parseStamp splits a stored line into its time and text; a line without a
// stamp (written before stamps existed) has the zero time.
func parseStamp(line string) (time.Time, string) {
	if len(line) > len(stampLayout) && line[len(stampLayout)] == ' ' {
		if t, err := time.Parse(stampLayout, line[:len(stampLayout)]); err == nil {
			return t, line[len(stampLayout)+1:]
		}
	}
	return time.Time{}, line
}
