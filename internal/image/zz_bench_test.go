package image

import (
	"context"
	"os"
	"testing"
	"time"
)

func TestZZBench(t *testing.T) {
	dir := os.Getenv("BENCH_DIR")
	if dir == "" {
		t.Skip()
	}
	for _, lvl := range []int{1, 6, 1, 6, 1, 6} {
		t0 := time.Now()
		l, err := Layer(context.Background(), dir, WithCompressionLevel(lvl))
		if err != nil {
			t.Fatal(err)
		}
		t1 := time.Now()
		d, _ := l.Digest()
		sz, _ := l.Size()
		t2 := time.Now()
		t.Logf("level %d: pass1 %v (%d bytes) compress %v -> %d bytes %s", lvl, t1.Sub(t0), l.UncompressedSize(), t2.Sub(t1), sz, d)
	}
}
