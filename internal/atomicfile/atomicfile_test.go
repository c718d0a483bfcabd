package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileReplacesWithMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if string(b) != "new" || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%q %v", b, fi.Mode())
	}
	if err := WriteFile(p, []byte("public"), 0o644); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v", fi.Mode())
	}
	// No temp file is left behind.
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Fatalf("left: %v", es)
	}
	// A directory that does not exist fails, naming the path, and creates nothing.
	if err := WriteFile(filepath.Join(dir, "no", "x"), nil, 0o600); err == nil {
		t.Fatal("wrote into a missing directory")
	}
}
