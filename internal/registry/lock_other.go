//go:build !unix

package registry

// lockFile is a no-op where flock is missing: only the in-process mutex
// protects index.json there.
func lockFile(string) (func(), error) { return func() {}, nil }
