package proxy

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

var (
	// ErrUnknownService is returned for operations on a service the router does not have.
	ErrUnknownService = errors.New("unknown service")
	// ErrHostInUse is returned when a deploy claims a host another service routes.
	ErrHostInUse = errors.New("host is routed to another service")
	// ErrNoHosts is returned when a new service is deployed without host names.
	ErrNoHosts = errors.New("service has no hosts")
	// ErrInvalidHost is returned for a host name that is not a DNS name or "*.suffix" wildcard.
	ErrInvalidHost = errors.New("invalid host")
	// ErrInvalidTarget is returned for a target that is not host:port.
	ErrInvalidTarget = errors.New("invalid target")
	// ErrUnhealthy is matched (errors.Is) by every health gate failure.
	ErrUnhealthy = errors.New("targets did not become healthy")
	// ErrGateDeadline is matched when the health gate's own deadline passed.
	ErrGateDeadline = errors.New("health gate deadline passed")
	// ErrStateVersion is returned when the state file was written by a newer Slipway.
	ErrStateVersion = errors.New("unsupported router state version")
)

// TargetHealth is what the health gate last saw of one target.
type TargetHealth struct {
	Address    string `json:"address"`
	Healthy    bool   `json:"healthy"`
	Checks     int    `json:"checks"`
	LastStatus int    `json:"last_status,omitempty"` // HTTP status of the last check, 0 if none came back
	LastError  string `json:"last_error,omitempty"`  // connection or timeout error of the last check
}

func (h TargetHealth) String() string {
	switch {
	case h.Healthy:
		return h.Address + ": healthy"
	case h.Checks == 0:
		return h.Address + ": not checked yet"
	case h.LastError != "":
		return fmt.Sprintf("%s: unhealthy after %d checks, last: %s", h.Address, h.Checks, h.LastError)
	default:
		return fmt.Sprintf("%s: unhealthy after %d checks, last: status %d", h.Address, h.Checks, h.LastStatus)
	}
}

// GateError says why a deploy's health gate failed: the reason it stopped
// (ErrGateDeadline, or the context's error) and what each target last answered.
// When it is returned, no request was sent to the new targets and the old ones
// still serve.
type GateError struct {
	Service  string
	Path     string
	Deadline time.Duration
	Reason   error
	Targets  []TargetHealth
}

func (e *GateError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "health gate for service %q (GET %s): ", e.Service, e.Path)
	if errors.Is(e.Reason, ErrGateDeadline) {
		fmt.Fprintf(&b, "deadline %s passed", e.Deadline)
	} else {
		fmt.Fprintf(&b, "stopped: %v", e.Reason)
	}
	for _, t := range e.Targets {
		b.WriteString("; ")
		b.WriteString(t.String())
	}
	return b.String()
}

// Unwrap lets callers test errors.Is(err, ErrUnhealthy) and errors.Is with the reason.
func (e *GateError) Unwrap() []error { return []error{ErrUnhealthy, e.Reason} }
