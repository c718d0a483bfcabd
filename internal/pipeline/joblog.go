package pipeline

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Job logs: every deploy and day-two event of a store, hook output
// included, is appended to <DataDir>/logs/<store>.jsonl so that `slipway
// logs` can interleave it with the instances' output. Events are redacted
// before they get here (Deploy's say), so no secret reaches the file.

// JobLine is one stored line of a store's job log.
type JobLine struct {
	Time  time.Time `json:"time"`
	Stage string    `json:"stage,omitempty"`
	Text  string    `json:"text"`
}

// jobLogLimit is the size past which a store's job log is rotated (one old file kept).
const jobLogLimit = 8 << 20

var jobLogMu sync.Mutex

// JobLogPath is where a store's job log lives under dataDir.
func JobLogPath(dataDir, store string) string {
	return filepath.Join(dataDir, "logs", store+".jsonl")
}

func (d *Deployer) logEvent(e Event) {
	if d.DataDir == "" || e.Store == "" {
		return
	}
	b, err := json.Marshal(JobLine{Time: e.Time, Stage: e.Stage, Text: e.Message})
	if err != nil {
		return
	}
	p := JobLogPath(d.DataDir, e.Store)
	jobLogMu.Lock()
	defer jobLogMu.Unlock()
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return
	}
	if fi, err := os.Stat(p); err == nil && fi.Size() > jobLogLimit {
		os.Rename(p, p+".1")
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	f.Write(append(b, '\n'))
	f.Close()
}

// ReadJobLog calls fn for each line of a store's job log written after
// since, oldest first, and returns how far it read (for following).
func ReadJobLog(dataDir, store string, since time.Time, offset int64, fn func(JobLine)) (int64, error) {
	p := JobLogPath(dataDir, store)
	if offset == 0 {
		if err := readJobFile(p+".1", since, 0, fn); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return 0, err
		}
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() < offset {
		offset = 0 // rotated
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return 0, err
	}
	n, err := scanJob(f, since, fn)
	return offset + n, err
}

func readJobFile(p string, since time.Time, _ int64, fn func(JobLine)) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = scanJob(f, since, fn)
	return err
}

// scanJob reads complete lines only and returns the bytes they took.
func scanJob(r io.Reader, since time.Time, fn func(JobLine)) (int64, error) {
	br := bufio.NewReader(r)
	var n int64
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
		n += int64(len(line))
		var l JobLine
		if json.Unmarshal(line, &l) == nil && (since.IsZero() || l.Time.After(since)) {
			fn(l)
		}
	}
}

// reqSecretValues are the values of the request's secrets.
func reqSecretValues(req DeployRequest) []string {
	var out []string
	for _, k := range req.Secrets {
		if v := req.Env[k]; v != "" {
			out = append(out, v)
		}
	}
	return out
}

// SecretValues returns the secret values of a store's live release, for
// redacting what a runtime stored without redaction (docker's own logs).
func (d *Deployer) SecretValues(store string) []string {
	if ls := d.live(store); ls != nil {
		return reqSecretValues(ls.req)
	}
	return nil
}
