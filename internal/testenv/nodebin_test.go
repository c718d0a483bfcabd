package testenv

import "testing"

// Node must fail, not skip, where CI requires the real parts.
func TestNodeMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Run("required", func(t *testing.T) {
		t.Setenv(RequireEnv, "1")
		rec := &recorder{TB: t}
		if got := Node(rec); got != "" || rec.fatal == "" || rec.skipped != "" {
			t.Fatalf("Node = %q (skip %q, fatal %q), want a failure", got, rec.skipped, rec.fatal)
		}
	})
	t.Run("local", func(t *testing.T) {
		t.Setenv(RequireEnv, "")
		rec := &recorder{TB: t}
		if got := Node(rec); got != "" || rec.skipped == "" || rec.fatal != "" {
			t.Fatalf("Node = %q (skip %q, fatal %q), want a skip", got, rec.skipped, rec.fatal)
		}
	})
}
