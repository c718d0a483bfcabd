package image

import (
	gzip "github.com/klauspost/compress/gzip"
	"io"
	"sync"
	"time"
)

// gzipTo compresses r into w. The gzip header is fixed: no name, no comment,
// mtime 0, OS "unknown"; with a fixed level and compressor the output is a
// pure function of the input, so the blob digest is as reproducible as the
// diff ID. (A different compressor version could still change it; that is why
// "is this image already published?" compares diff IDs, not blob digests.)
func gzipTo(w io.Writer, r io.Reader, level int) error {
	zw, err := gzip.NewWriterLevel(w, level)
	if err != nil {
		return err
	}
	// Spelled out: this gzip package would encode the zero time.Time as a
	// nonzero MTIME. RFC 1952: MTIME 0 means "no time stamp", OS 255 "unknown".
	zw.Header = gzip.Header{ModTime: time.Unix(0, 0), OS: 255}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	if _, err := io.CopyBuffer(zw, r, *bp); err != nil {
		return err
	}
	return zw.Close()
}

type gunzipReader struct {
	*gzip.Reader
	once sync.Once
}

func newGunzipReader(r io.Reader) (io.ReadCloser, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	return &gunzipReader{Reader: zr}, nil
}

func (g *gunzipReader) Close() error {
	var err error
	g.once.Do(func() { err = g.Reader.Close() })
	return err
}
