package process

import (
	"encoding/json"
	"path/filepath"
	"testing"
)

// TestRecordCacheSeesRewrites: a record replaced on disk (by rename, as
// writeAtomic does, even with the same size and within one timestamp tick)
// is read anew; callers' changes to a returned record never reach the cache.
func TestRecordCacheSeesRewrites(t *testing.T) {
	var c recordCache
	path := filepath.Join(t.TempDir(), "abc.json")
	write := func(state string) {
		b, _ := json.Marshal(record{ID: "abc", State: state, Labels: map[string]string{"k": "v"}})
		if err := writeAtomic(path, b); err != nil {
			t.Fatal(err)
		}
	}
	write("aaaaaaa")
	r, err := c.read(path)
	if err != nil || r.State != "aaaaaaa" {
		t.Fatalf("first read: %+v %v", r, err)
	}
	r.Labels["k"] = "changed by a caller"
	if again, _ := c.read(path); again.Labels["k"] != "v" {
		t.Errorf("a caller's change reached the cache: %v", again.Labels)
	}
	write("bbbbbbb") // same size
	if r, err := c.read(path); err != nil || r.State != "bbbbbbb" {
		t.Errorf("after a rewrite: %+v %v, want state bbbbbbb", r, err)
	}
}
