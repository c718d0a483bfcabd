package driver

import "context"

// Unpacker puts an image's files on the host, for the router to serve a
// static site from them (an app that runs no process).
type Unpacker interface {
	// Unpack returns the image's root filesystem on disk, unpacked once per
	// digest. The files stay at least as long as a release of the last few
	// uses the digest (Pruner keeps them).
	Unpack(ctx context.Context, im Image) (Unpacked, error)
}

// Unpacked is an image's files on disk.
type Unpacked struct {
	// Root is the root filesystem directory.
	Root string
	// WorkDir is the image's working directory (where the app's files are),
	// absolute inside the image: "/var/www".
	WorkDir string
	// Entrypoint and Cmd are the image's main process; both empty for an
	// image that has nothing to run.
	Entrypoint, Cmd []string
}

// ProcessChecker tells whether an image has anything to run without
// unpacking it. With a runtime that does not unpack images itself (docker,
// swarm), static detection asks it first, so that only images with no
// entrypoint and no command (which such a runtime could not start anyway)
// are unpacked to look for an index.html.
type ProcessChecker interface {
	// HasProcess says whether the image's config names an entrypoint or a command.
	HasProcess(ctx context.Context, im Image) (bool, error)
}
