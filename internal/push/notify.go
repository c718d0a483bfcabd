package push

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/slipway-dev/slipway/internal/jobs"
	"github.com/slipway-dev/slipway/internal/source"
)

// Notifier posts a signed JSON message to a URL when a job ends, so CI or a
// chat bridge can follow deploys. Deliveries are retried with exponential
// backoff on network errors, 429 and 5xx; a 4xx is final.
type Notifier struct {
	url    string
	secret []byte
	hc     *http.Client
	log    *slog.Logger
	// Attempts per message; default 5. Backoff starts at Backoff (default 1s) and doubles.
	Attempts int
	Backoff  time.Duration

	wg sync.WaitGroup
}

// Notification is the body of a job-ended message.
type Notification struct {
	Event string    `json:"event"` // "job.finished"
	ID    string    `json:"id"`
	At    time.Time `json:"at"`
	Job   *jobs.Job `json:"job"`
}

// NewNotifier checks the URL and reads the signing secret from secretFile
// (required: an unsigned message could be forged by anyone).
func NewNotifier(rawURL, secretFile string, log *slog.Logger) (*Notifier, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--notify-url %q: give an http(s) URL", source.StripCredentials(rawURL))
	}
	if secretFile == "" {
		return nil, errors.New("--notify-url needs --notify-secret-file: messages are signed with HMAC-SHA256")
	}
	sec, err := source.ReadSecret(secretFile)
	if err != nil {
		return nil, fmt.Errorf("--notify-secret-file: %w", err)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Notifier{url: rawURL, secret: sec, hc: &http.Client{Timeout: 10 * time.Second}, log: log, Attempts: 5, Backoff: time.Second}, nil
}

// Notify sends j in the background.
func (n *Notifier) Notify(j *jobs.Job) {
	b := make([]byte, 8)
	rand.Read(b)
	msg := Notification{Event: "job.finished", ID: hex.EncodeToString(b), At: time.Now().UTC(), Job: j}
	body, err := json.Marshal(msg)
	if err != nil {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.send(context.Background(), msg.ID, body); err != nil {
			n.log.Warn("notification not delivered", "job", j.ID, "error", err)
		}
	}()
}

// Wait waits for messages under way (serve's shutdown), at most until ctx ends.
func (n *Notifier) Wait(ctx context.Context) {
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func (n *Notifier) send(ctx context.Context, id string, body []byte) error {
	sig := "sha256=" + source.Sign(n.secret, body)
	wait := n.Backoff
	var last error
	for attempt := 1; attempt <= max(1, n.Attempts); attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "slipway-notify")
		req.Header.Set("X-Slipway-Event", "job.finished")
		req.Header.Set("X-Slipway-Delivery", id)
		req.Header.Set("X-Slipway-Signature-256", sig)
		resp, err := n.hc.Do(req)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			switch {
			case resp.StatusCode < 300:
				return nil
			case resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode < 500:
				return fmt.Errorf("the receiver answered %d: not retried", resp.StatusCode)
			}
			err = fmt.Errorf("the receiver answered %d", resp.StatusCode)
		} else {
			// The URL may hold credentials: say what failed without it.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
		}
		last = fmt.Errorf("attempt %d: %w", attempt, err)
		if attempt < n.Attempts {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return ctx.Err()
			}
			wait *= 2
		}
	}
	return last
}
