package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/slipway-dev/slipway/internal/pipeline"
)

// PS lists the web instances of a store (every store when empty).
func (c *Client) PS(ctx context.Context, store string) ([]pipeline.InstanceStatus, error) {
	var out []pipeline.InstanceStatus
	path := "/v1/ps"
	if store != "" {
		path += "?store=" + url.QueryEscape(store)
	}
	err := c.getJSON(ctx, path, &out)
	return out, err
}

// Op runs a day-two operation on a store: restart, stop, start or remove.
func (c *Client) Op(ctx context.Context, op, store string, onEvent func(pipeline.Event)) error {
	_, err := c.opStream(ctx, "/v1/stores/"+url.PathEscape(store)+"/"+op, nil, onEvent, nil, nil)
	return err
}

// Scale sets the instance counts of a store's apps.
func (c *Client) Scale(ctx context.Context, store string, counts map[string]int, onEvent func(pipeline.Event)) error {
	_, err := c.opStream(ctx, "/v1/stores/"+url.PathEscape(store)+"/scale", ScaleRequest{Instances: counts}, onEvent, nil, nil)
	return err
}

// Prune removes unused runtime images and returns what went.
func (c *Client) Prune(ctx context.Context, onEvent func(pipeline.Event)) ([]string, error) {
	last, err := c.opStream(ctx, "/v1/prune", nil, onEvent, nil, nil)
	return last.Removed, err
}

// Run runs a one-off command in a store's live release, streaming its output,
// and returns its exit code.
func (c *Client) Run(ctx context.Context, store string, req RunRequest, stdout, stderr io.Writer) (int, error) {
	last, err := c.opStream(ctx, "/v1/stores/"+url.PathEscape(store)+"/run", req, nil, stdout, stderr)
	if err != nil {
		return -1, err
	}
	if last.Exit == nil {
		return -1, errors.New("the server sent no exit code")
	}
	return *last.Exit, nil
}

// opStream posts body and reads the NDJSON answer to its last line.
func (c *Client) opStream(ctx context.Context, path string, body any, onEvent func(pipeline.Event), stdout, stderr io.Writer) (OpLine, error) {
	resp, err := c.do(ctx, http.MethodPost, path, body)
	if err != nil {
		return OpLine{}, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	for sc.Scan() {
		var l OpLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return OpLine{}, fmt.Errorf("reading the answer of %s: %w", path, err)
		}
		switch {
		case l.Event != nil && onEvent != nil:
			onEvent(*l.Event)
		case l.Stream == "stdout" && stdout != nil:
			io.WriteString(stdout, l.Data)
		case l.Stream == "stderr" && stderr != nil:
			io.WriteString(stderr, l.Data)
		}
		if l.Done {
			if l.Error != "" {
				return l, errors.New(l.Error)
			}
			return l, nil
		}
	}
	if err := sc.Err(); err != nil {
		return OpLine{}, fmt.Errorf("reading the answer of %s: %w", path, err)
	}
	return OpLine{}, fmt.Errorf("%s: the server closed the answer before the end", path)
}

// Logs reads a store's logs (see LogsQuery), calling fn for each line, until
// the end or, with Follow, until ctx ends.
func (c *Client) Logs(ctx context.Context, store string, q LogsQuery, fn func(LogEntry)) error {
	v := url.Values{}
	if q.App != "" {
		v.Set("app", q.App)
	}
	if q.Since != 0 {
		v.Set("since", q.Since.String())
	}
	if q.Tail != 0 {
		v.Set("tail", strconv.Itoa(q.Tail))
	}
	if q.Follow {
		v.Set("follow", "1")
	}
	resp, err := c.do(ctx, http.MethodGet, "/v1/stores/"+url.PathEscape(store)+"/logs?"+v.Encode(), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	for sc.Scan() {
		var e LogEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("reading the logs of %s: %w", store, err)
		}
		fn(e)
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("reading the logs of %s: %w", store, err)
	}
	return nil
}
