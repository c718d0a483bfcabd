package state

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A holder's lease is renewed for as long as it holds the lock: a deploy that
// runs several leases long keeps its store locked, and nobody reclaims it.
func TestLeaseRenewedThroughLongHold(t *testing.T) {
	ctx := context.Background()
	d := open(t)
	const lease = 300 * time.Millisecond
	l, err := d.Acquire(ctx, "us", LockOptions{Lease: lease})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	// Hold it for four leases, checking all along that it stays unexpired.
	end := time.Now().Add(4 * lease)
	for time.Now().Before(end) {
		time.Sleep(lease / 4)
		h, alive, err := d.LockHolder(ctx, "us")
		if err != nil || h == nil || !alive {
			t.Fatalf("after %s of a %s lease: holder %v, unexpired %v, err %v; the lease was not renewed",
				time.Since(l.Holder.Since).Round(time.Millisecond), lease, h, alive, err)
		}
	}
	// Another holder (here: another host, which cannot check our pid) is refused.
	other := &Lock{d: d, Store: "us", token: "other", lease: lease, Holder: Holder{Host: "elsewhere", PID: 1, Since: time.Now()}}
	if err := d.tryAcquire(ctx, other); !errors.Is(err, ErrLocked) {
		t.Fatalf("a second holder got the lock of a live holder after %s: %v", 4*lease, err)
	}
	if err := l.Err(); err != nil {
		t.Fatalf("the holder lost its lock: %v", err)
	}
}
