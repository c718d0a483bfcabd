package image

import (
	"compress/gzip"
	"fmt"
	"path"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

// DefaultWorkDir is where the .deploy directory lands inside the image.
const DefaultWorkDir = "/var/www"

// Option configures Layer and Build.
type Option func(*options) error

type options struct {
	workDir   string
	modTime   time.Time
	level     int
	tempDir   string
	extra     []extraFile
	mediaType types.MediaType
}

type extraFile struct{ host, image string }

func makeOptions(opts ...Option) (*options, error) {
	o := &options{
		workDir:   DefaultWorkDir,
		modTime:   time.Unix(0, 0),
		level:     gzip.BestSpeed,
		mediaType: types.OCILayer,
	}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// WithWorkDir places the directory's contents at dir, an absolute path inside
// the image. Its parents are emitted as root-owned 0755 directories, so dir
// must not sit under a directory with special permissions such as /tmp.
// The default is DefaultWorkDir (/var/www).
func WithWorkDir(dir string) Option {
	return func(o *options) error {
		clean, err := cleanImagePath(dir)
		if err != nil {
			return fmt.Errorf("work dir: %w", err)
		}
		if clean == "/" {
			return fmt.Errorf("work dir %q: must not be the root directory", dir)
		}
		o.workDir = clean
		return nil
	}
}

// WithModTime sets the modification time of every entry in the layer; pass
// SOURCE_DATE_EPOCH or the commit time. Sub-second precision is dropped.
// The default is the Unix epoch.
func WithModTime(t time.Time) Option {
	return func(o *options) error {
		o.modTime = t.UTC().Truncate(time.Second)
		return nil
	}
}

// WithCompressionLevel sets the gzip level (gzip.BestSpeed..gzip.BestCompression).
// The layer digest depends on it, the diff ID does not. The default is
// gzip.BestSpeed: on a 2-core builder pushing to a nearby registry the
// compression pass, not the network, is the bottleneck.
func WithCompressionLevel(level int) Option {
	return func(o *options) error {
		if level < gzip.BestSpeed || level > gzip.BestCompression {
			return fmt.Errorf("gzip level %d: want %d..%d", level, gzip.BestSpeed, gzip.BestCompression)
		}
		o.level = level
		return nil
	}
}

// WithTempDir sets where the compressed layer is spooled. The file is
// unlinked as soon as it is created, so nothing is left behind even after a
// crash. The default is os.TempDir().
func WithTempDir(dir string) Option {
	return func(o *options) error {
		o.tempDir = dir
		return nil
	}
}

// WithFile adds the regular file at hostPath to the layer at imagePath, an
// absolute path outside the work dir. Build uses it for an entrypoint.sh that
// lives next to .deploy rather than inside it. The default is no extra files.
func WithFile(hostPath, imagePath string) Option {
	return func(o *options) error {
		clean, err := cleanImagePath(imagePath)
		if err != nil {
			return fmt.Errorf("extra file %s: %w", hostPath, err)
		}
		o.extra = append(o.extra, extraFile{host: hostPath, image: clean})
		return nil
	}
}

// withMediaType matches the layer's media type to the manifest it joins
// (Docker or OCI); Build sets it. The default is types.OCILayer.
func withMediaType(mt types.MediaType) Option {
	return func(o *options) error {
		o.mediaType = mt
		return nil
	}
}

func cleanImagePath(p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("%q is not an absolute path", p)
	}
	return path.Clean(p), nil
}
