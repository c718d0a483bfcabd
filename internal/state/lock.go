package state

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultLease is how long a lock lives without renewal; a live holder renews it
// every third of that, so only a dead holder's lock expires.
const DefaultLease = 30 * time.Second

// Holder says who holds a deploy lock.
type Holder struct {
	Host   string    `json:"host"`
	PID    int       `json:"pid"`
	Commit string    `json:"commit,omitempty"`
	Since  time.Time `json:"since"`
}

func (h Holder) String() string {
	s := fmt.Sprintf("%s pid %d since %s", h.Host, h.PID, h.Since.Format(time.RFC3339))
	if h.Commit != "" {
		s += ", deploying " + h.Commit
	}
	return s
}

// LockedError is returned when another live holder has the lock.
type LockedError struct {
	Store  string
	Holder Holder
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("store %s is being deployed by %s (use --wait to wait for it)", e.Store, e.Holder)
}

// ErrLocked matches any *LockedError with errors.Is.
var ErrLocked = errors.New("store is locked")

// Is makes errors.Is(err, ErrLocked) work.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// Lock is a held deploy lock; it renews itself until Release.
type Lock struct {
	d      *DB
	Store  string
	token  string
	lease  time.Duration
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
	mu     sync.Mutex
	lost   error
	Holder Holder
}

// LockOptions tune Acquire.
type LockOptions struct {
	// Lease; default DefaultLease.
	Lease time.Duration
	// Wait polls until the lock is free instead of failing at once.
	Wait bool
	// Commit is recorded for whoever finds the store locked.
	Commit string
}

// Acquire takes the deploy lock of store. A lock whose lease expired, or whose
// holder is a dead process on this host, is reclaimed.
func (d *DB) Acquire(ctx context.Context, store string, o LockOptions) (*Lock, error) {
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	host, _ := os.Hostname()
	var b [16]byte
	rand.Read(b[:])
	l := &Lock{d: d, Store: store, token: hex.EncodeToString(b[:]), lease: o.Lease, stop: make(chan struct{}), done: make(chan struct{}),
		Holder: Holder{Host: host, PID: os.Getpid(), Commit: o.Commit, Since: time.Now()}}
	for {
		// Taken before trying, so a release that lands between the try and
		// the wait below still wakes this waiter.
		released := d.lockReleased()
		err := d.tryAcquire(ctx, l)
		if err == nil {
			go l.renew()
			return l, nil
		}
		var le *LockedError
		if !errors.As(err, &le) || !o.Wait {
			return nil, err
		}
		// A holder in this process wakes us as it lets go; one in another
		// process (or a dead one whose lease runs out) is polled for.
		t := time.NewTimer(crossProcessPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for the lock of %s: %w (%v)", store, ctx.Err(), err)
		case <-released:
		case <-t.C:
		}
		t.Stop()
	}
}

// crossProcessPoll is how often a waiter looks again at a lock held by
// another process; releases in this process wake waiters at once.
const crossProcessPoll = 250 * time.Millisecond

// lockReleased returns a channel closed at the next lock release in this process.
func (d *DB) lockReleased() <-chan struct{} {
	d.relMu.Lock()
	defer d.relMu.Unlock()
	if d.released == nil {
		d.released = make(chan struct{})
	}
	return d.released
}

// wakeLockWaiters tells this process's waiters that a lock was released.
func (d *DB) wakeLockWaiters() {
	d.relMu.Lock()
	defer d.relMu.Unlock()
	if d.released != nil {
		close(d.released)
		d.released = nil
	}
}

func (d *DB) tryAcquire(ctx context.Context, l *Lock) error {
	return d.Write(ctx, func(tx *sql.Tx) error { return tryAcquireTx(ctx, tx, l) })
}

func tryAcquireTx(ctx context.Context, tx *sql.Tx, l *Lock) error {
	var h Holder
	var since, expires int64
	err := tx.QueryRowContext(ctx, "SELECT host, pid, commit_sha, since, expires FROM locks WHERE store=?", l.Store).Scan(&h.Host, &h.PID, &h.Commit, &since, &expires)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return err
	default:
		h.Since = time.Unix(0, since)
		alive := time.Now().UnixNano() < expires
		if alive && h.Host == l.Holder.Host && !processAlive(h.PID) {
			alive = false // its holder died on this host: no need to wait out the lease
		}
		if alive {
			return &LockedError{Store: l.Store, Holder: h}
		}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO locks (store, token, host, pid, commit_sha, since, expires) VALUES (?,?,?,?,?,?,?)
		ON CONFLICT (store) DO UPDATE SET token=excluded.token, host=excluded.host, pid=excluded.pid, commit_sha=excluded.commit_sha, since=excluded.since, expires=excluded.expires`,
		l.Store, l.token, l.Holder.Host, l.Holder.PID, l.Holder.Commit, l.Holder.Since.UnixNano(), time.Now().Add(l.lease).UnixNano())
	return err
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func (l *Lock) renew() {
	defer close(l.done)
	t := time.NewTicker(l.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			res, err := l.d.Exec(context.Background(), "UPDATE locks SET expires=? WHERE store=? AND token=?", time.Now().Add(l.lease).UnixNano(), l.Store, l.token)
			if err == nil {
				if n, _ := res.RowsAffected(); n == 0 {
					err = fmt.Errorf("the deploy lock of %s was taken over", l.Store)
				}
			}
			if err != nil {
				l.mu.Lock()
				l.lost = err
				l.mu.Unlock()
			}
		}
	}
}

// Err reports whether the lock was lost (taken over after an expired lease).
func (l *Lock) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// Release gives the lock up. It is safe to call more than once.
func (l *Lock) Release() error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		_, err = l.d.Exec(context.Background(), "DELETE FROM locks WHERE store=? AND token=?", l.Store, l.token)
		if err != nil {
			// A full disk (or a database locked by another process) must
			// not keep the store locked until the lease runs out: the
			// release is retried until it lands or the lease has expired.
			go l.retryRelease()
			return
		}
		l.d.wakeLockWaiters()
	})
	return err
}

// retryRelease deletes the lock's row, retrying every releaseRetry until it
// works or the (no longer renewed) lease is over.
func (l *Lock) retryRelease() {
	end := time.Now().Add(l.lease)
	for time.Now().Before(end) {
		time.Sleep(releaseRetry)
		_, err := l.d.Exec(context.Background(), "DELETE FROM locks WHERE store=? AND token=?", l.Store, l.token)
		if err == nil || errors.Is(err, sql.ErrConnDone) || strings.Contains(err.Error(), "database is closed") {
			break
		}
	}
	l.d.wakeLockWaiters()
}

// releaseRetry is how often a lock release that failed is tried again.
const releaseRetry = 200 * time.Millisecond

// LockHolder returns who holds store's lock, if anyone does (expired or not).
func (d *DB) LockHolder(ctx context.Context, store string) (*Holder, bool, error) {
	var h Holder
	var since, expires int64
	err := d.db.QueryRowContext(ctx, "SELECT host, pid, commit_sha, since, expires FROM locks WHERE store=?", store).Scan(&h.Host, &h.PID, &h.Commit, &since, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	h.Since = time.Unix(0, since)
	return &h, time.Now().UnixNano() < expires, nil
}
