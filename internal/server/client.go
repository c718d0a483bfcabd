package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/state"
)

// Client talks to a server's API over its unix socket, or over HTTP(S) with a token.
type Client struct {
	socket string // "" for a remote client
	base   string // URL prefix of every call
	token  string
	hc     *http.Client
}

// ErrNotRunning means no server answers on the socket.
var ErrNotRunning = errors.New("no slipway serve is running for this data dir")

// NewClient returns a client for the server of dataDir.
func NewClient(dataDir string) *Client {
	sock := SocketPath(dataDir)
	return &Client{socket: sock, base: "http://slipway", hc: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}}
}

// NewRemoteClient returns a client for the API at base (http[s]://host:port) that sends token as a bearer token.
func NewRemoteClient(base, token string) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: use http(s)://host:port", base)
	}
	return &Client{base: strings.TrimRight(u.String(), "/"), token: token, hc: &http.Client{}}, nil
}

// Where names the server this client talks to (its socket or URL).
func (c *Client) Where() string {
	if c.socket != "" {
		return c.socket
	}
	return c.base
}

func (c *Client) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ne *net.OpError
		if errors.As(err, &ne) && ne.Op == "dial" {
			if c.socket == "" {
				return nil, fmt.Errorf("no slipway serve answers at %s: %w", c.base, err)
			}
			return nil, fmt.Errorf("%w (%s): start it with `slipway serve`, or use `slipway up`", ErrNotRunning, c.socket)
		}
		return nil, err
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		var e struct{ Error string }
		json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&e)
		return nil, &APIError{Code: resp.StatusCode, Method: method, Path: path, Msg: e.Error}
	}
	return resp, nil
}

func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	resp, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// Ping checks that the server answers.
func (c *Client) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var v map[string]string
	return c.getJSON(ctx, "/v1/health", &v)
}

// Deploy runs a deploy, passing each event to onEvent, and returns the release.
func (c *Client) Deploy(ctx context.Context, req pipeline.DeployRequest, onEvent func(pipeline.Event)) (*state.Release, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/deploy", req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	for sc.Scan() {
		var l DeployLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("reading the deploy stream: %w", err)
		}
		if l.Event != nil && onEvent != nil {
			onEvent(*l.Event)
		}
		if l.Done {
			if l.Error != "" {
				return l.Release, errors.New(l.Error)
			}
			return l.Release, nil
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.ECONNRESET) {
		return nil, fmt.Errorf("reading the deploy stream: %w", err)
	}
	return nil, errors.New("the server closed the deploy stream before the end: see `slipway releases` and the server log")
}

// Releases lists a store's releases, newest first.
func (c *Client) Releases(ctx context.Context, store string) ([]*state.Release, error) {
	var rs []*state.Release
	err := c.getJSON(ctx, "/v1/stores/"+url.PathEscape(store)+"/releases", &rs)
	return rs, err
}

// Status returns what is live.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st Status
	err := c.getJSON(ctx, "/v1/status", &st)
	return &st, err
}

// APIError is a refusal from the server: 400 (a field at fault), 401, 403, 404, 409 or 500.
type APIError struct {
	Code   int
	Method string
	Path   string
	Msg    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s %s: %s (%d)", e.Method, e.Path, e.Msg, e.Code)
}
