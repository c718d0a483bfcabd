package image

import (
	gzip "github.com/klauspost/compress/gzip"
	"io"
	"sync"
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
