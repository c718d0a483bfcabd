//go:build integration

package swarm

import (
	"context"
	"testing"
)

// Stats reports the memory of a service's tasks (slipway ps on swarm), the
// sum over its replicas.
func TestStatsSumsTaskMemory(t *testing.T) {
	e := setup(t)
	if e == nil {
		return
	}
	ctx := context.Background()
	one := e.open(t, WithPinnedPorts(false))
	inst1, err := one.Start(ctx, e.spec("stats1"))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer one.Stop(ctx, inst1.ID)
	two := e.open(t, WithReplicas(2), WithPinnedPorts(false))
	inst2, err := two.Start(ctx, e.spec("stats2"))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer two.Stop(ctx, inst2.ID)
	for _, a := range inst2.Addrs {
		httpGet(t, a, "/healthz")
	}
	s1, err := one.Stats(ctx, inst1.ID)
	if err != nil || s1.MemoryBytes <= 0 {
		t.Fatalf("Stats of one replica: %+v %v", s1, err)
	}
	s2, err := two.Stats(ctx, inst2.ID)
	if err != nil || s2.MemoryBytes <= 0 {
		t.Fatalf("Stats of two replicas: %+v %v", s2, err)
	}
	// Two copies of the same app: more than one alone, clearly.
	if s2.MemoryBytes < s1.MemoryBytes*3/2 {
		t.Errorf("two replicas use %d bytes, one %d: want the sum of both tasks", s2.MemoryBytes, s1.MemoryBytes)
	}
	if _, err := one.Stats(ctx, "no-such-service"); err == nil {
		t.Errorf("Stats of an unknown service succeeded")
	}
}
