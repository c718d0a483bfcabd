package testenv

import "testing"

func TestScratchFail(t *testing.T) {
	_, err := startRegistry(t, "/bin/false", registryConfig{})
	t.Logf("err: %v", err)
	// occupy a port then check addr in use detection
	r := StartRegistry(t)
	_, err = startRegistry(t, registryBinary(), registryConfig{})
	_ = r
	t.Logf("ok second: %v", err)
}
