package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/slipway-dev/slipway/internal/jobs"
	"github.com/slipway-dev/slipway/internal/push"
)

// DeployCommit asks the server to build and deploy a commit of its repository (POST /v1/source/deploy).
func (c *Client) DeployCommit(ctx context.Context, req push.DeployRequest) (*push.Answer, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/source/deploy", req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var a push.Answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return nil, fmt.Errorf("reading the deploy answer: %w", err)
	}
	return &a, nil
}

// Jobs lists jobs, newest first (store "" for all).
func (c *Client) Jobs(ctx context.Context, store string, limit int) ([]*jobs.Job, error) {
	q := url.Values{}
	if store != "" {
		q.Set("store", store)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out []*jobs.Job
	err := c.getJSON(ctx, "/v1/jobs?"+q.Encode(), &out)
	return out, err
}

// Job returns one job.
func (c *Client) Job(ctx context.Context, id string) (*jobs.Job, error) {
	var j jobs.Job
	err := c.getJSON(ctx, "/v1/jobs/"+url.PathEscape(id), &j)
	return &j, err
}

// CancelJob asks the server to stop a job at its next safe point.
func (c *Client) CancelJob(ctx context.Context, id string) (*jobs.Job, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(id)+"/cancel", struct{}{})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var j jobs.Job
	return &j, json.NewDecoder(resp.Body).Decode(&j)
}

// FollowJob streams a job's log (server-sent events) from line after, calling
// onLine for each, until the job ends; it reconnects where it left off if the
// stream breaks, and returns the finished job.
func (c *Client) FollowJob(ctx context.Context, id string, after int64, onLine func(jobs.Line)) (*jobs.Job, error) {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		j, n, err := c.followOnce(ctx, id, after, onLine)
		if j != nil {
			return j, nil
		}
		after = n
		var ae *APIError
		if errors.As(err, &ae) || ctx.Err() != nil {
			return nil, err
		}
		lastErr = err
	}
	return nil, fmt.Errorf("following %s: %w", id, lastErr)
}

func (c *Client) followOnce(ctx context.Context, id string, after int64, onLine func(jobs.Line)) (*jobs.Job, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/jobs/"+url.PathEscape(id)+"/log", nil)
	if err != nil {
		return nil, after, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Last-Event-ID", strconv.FormatInt(after, 10))
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, after, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		return nil, after, &APIError{Code: resp.StatusCode, Method: "GET", Path: req.URL.Path, Msg: e.Error}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	var event string
	var data bytes.Buffer
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			var ev push.LogEvent
			if data.Len() > 0 && json.Unmarshal(data.Bytes(), &ev) == nil {
				if ev.Line != nil {
					after = ev.Line.Seq
					if onLine != nil {
						onLine(*ev.Line)
					}
				}
				if event == "end" && ev.Job != nil {
					return ev.Job, after, nil
				}
			}
			event = ""
			data.Reset()
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data.WriteString(strings.TrimPrefix(line, "data: "))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, after, err
	}
	return nil, after, errors.New("the log stream ended before the job")
}
