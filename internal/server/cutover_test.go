package server

import (
	"context"
	"testing"
	"time"

	"github.com/slipway-dev/slipway/internal/pipeline"
	"github.com/slipway-dev/slipway/internal/state"
)

// A release is recorded live when the router swaps, not once the old
// instances have drained: a long request on the old release must not keep
// the new one "deploying".
func TestReleaseIsLiveAtTheSwap(t *testing.T) {
	h := start(t, t.TempDir())
	if _, err, evs := h.deploy(pipeline.DeployRequest{Commit: "c1", Apps: []pipeline.AppDeploy{h.app("v1")}}); err != nil {
		t.Fatalf("%v\n%v", err, evs)
	}
	slow := make(chan int, 1)
	go func() {
		code, _ := h.get("us.localhost", "/slow?ms=3000")
		slow <- code
	}()
	time.Sleep(200 * time.Millisecond) // the slow request is in flight on v1
	done := make(chan error, 1)
	go func() {
		_, err, _ := h.deploy(pipeline.DeployRequest{Commit: "c2", Apps: []pipeline.AppDeploy{h.app("v2")}, DrainTimeout: 10 * time.Second})
		done <- err
	}()
	deadline := time.Now().Add(2500 * time.Millisecond)
	for {
		cur, err := h.s.State.Current(context.Background(), "us")
		if err == nil && cur.Commit == "c2" && cur.Status == state.StatusLive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("c2 not recorded live while v1 drains: %+v %v", cur, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("deploy returned (%v) before the slow request ended: the drain did not wait for it", err)
	default:
	}
	if code := <-slow; code != 200 {
		t.Errorf("the in-flight request on the old release got %d", code)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
