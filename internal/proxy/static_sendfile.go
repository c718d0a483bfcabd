package proxy

import (
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// Static answers the Front writes itself leave with sendfile when the file
// is big enough: the head goes with MSG_MORE, then the kernel sends the
// file from the page cache without copying it into the socket (nginx's
// sendfile + tcp_nopush). Profiling the static benchmark showed the copy
// of the body into the socket (_copy_from_iter) as a fifth of writev, and
// writev as half of the router's CPU. A release's files never change, so
// the site keeps such files open from deploy to drain: a request costs no
// open, stat or close. sendfile's offset argument leaves the file's own
// position alone, so one descriptor serves every request at once.
//
// The head of such an answer is built once per release too (prebuiltHead):
// filling the header map, then walking it to write the head, was a tenth
// of the CPU of a static answer.

// sendfileMin is the smallest body sent with sendfile. The head then needs
// a system call of its own (sendmsg with MSG_MORE), which the profile put
// at about the cost of copying 30 KiB into the socket: smaller bodies
// leave with the head in one writev.
const sendfileMin = 32 << 10

// Descriptors kept open for sendfile, for every site together: a share of
// the open-file limit, most of which the listener keeps for connections
// (Limits.MaxConns). A file past the budget is written from memory or
// opened per request, as before.
var (
	keptFDs      atomic.Int64
	keptFDBudget = sync.OnceValue(func() int64 {
		var rl syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0
		}
		return int64(min(rl.Cur/16, 4096))
	})
)

// keptFile is a file held open for sendfile for the life of its release.
type keptFile struct {
	f  *os.File
	rc syscall.RawConn
}

// keep holds fh open for sendfile when it qualifies and the budget
// allows; false means the caller closes fh.
func (s *staticSite) keep(f *staticFile, fh *os.File) bool {
	if !canSendfile || f.size < sendfileMin {
		return false
	}
	s.fdMu.Lock()
	defer s.fdMu.Unlock()
	if kf, ok := s.kept[f.name]; ok {
		f.fd = kf // app.js.br as a variant of app.js and under its own path
		return false
	}
	if keptFDs.Add(1) > keptFDBudget() {
		keptFDs.Add(-1)
		return false
	}
	rc, err := fh.SyscallConn()
	if err != nil {
		keptFDs.Add(-1)
		return false
	}
	f.fd = &keptFile{f: fh, rc: rc}
	if s.kept == nil {
		s.kept = map[string]*keptFile{}
	}
	s.kept[f.name] = f.fd
	s.fds = append(s.fds, fh)
	return true
}

// closeKept closes the site's kept files (at its drain). A request still
// sending one keeps it until it is done: the raw descriptor is used only
// inside the file's RawConn, which holds a reference.
func (s *staticSite) closeKept() {
	s.fdMu.Lock()
	fds := s.fds
	s.fds, s.kept = nil, nil
	s.fdMu.Unlock()
	for _, fh := range fds {
		fh.Close()
	}
	keptFDs.Add(-int64(len(fds)))
}

// fromFront says whether the Front can send x itself: from memory, or
// with sendfile.
func fromFront(x *staticFile) bool {
	return x.data != nil || x.fd != nil
}

// prebuiltHead is x's whole 200 head but its Date and end: the same
// headers send sets through the header map, written once per release.
// vary: the file has precompressed variants; enc: x is the one for enc.
func prebuiltHead(x *staticFile, vary bool, enc string) []byte {
	b := []byte("HTTP/1.1 200 OK\r\nContent-Type: " + x.hType[0] + "\r\nX-Content-Type-Options: nosniff\r\n")
	if vary {
		b = append(b, "Vary: Accept-Encoding\r\n"...)
	}
	if enc != "" {
		b = append(b, "Content-Encoding: "+enc+"\r\n"...)
	}
	if x.data == nil {
		b = append(b, "Accept-Ranges: bytes\r\n"...) // as http.ServeContent says for files on disk
	}
	b = append(b, "Cache-Control: "+x.hCache[0]+"\r\nEtag: "+x.hTag[0]+"\r\nLast-Modified: "+x.hMod[0]+
		"\r\nContent-Length: "+x.hLen[0]+"\r\n"...)
	for _, v := range []string{x.hType[0], x.hCache[0], x.hTag[0]} {
		if !validHeaderValue(v) {
			return nil // a type from the host's mime.types with odd bytes: the map path sanitises it
		}
	}
	return b
}

// sendPrebuilt writes a whole 200 answer of x (a plain GET) on the
// Front's own connection: its prebuilt head and the body, with sendfile
// for a kept file and one writev from memory otherwise, without the
// header map or net/http. false means it cannot (a header already set, no
// prebuilt head, not the limiter's connection); the caller answers as usual.
func (w *frontWriter) sendPrebuilt(x *staticFile) (int64, bool) {
	if len(w.h) != 0 || w.status != 0 || w.wrote || x.head == nil || !fromFront(x) {
		return 0, false
	}
	lc, _ := w.fc.c.(*limitedConn)
	if lc == nil || lc.cork.on {
		return 0, false
	}
	// The write buffer is empty and lent for this request: the head is
	// built in it and sent from there.
	head := w.fc.bw.AvailableBuffer()
	if cap(head) < len(x.head)+80 {
		return 0, false
	}
	head = append(head, x.head...)
	head = append(head, "Date: "...)
	head = append(head, httpDate()...)
	head = append(head, "\r\n"...)
	if w.req.Close || w.shutting.Load() {
		head = append(head, "Connection: close\r\n"...) // as writeHead
		w.close = true
	}
	head = append(head, "\r\n"...)
	w.status, w.wrote, w.left = http.StatusOK, true, 0
	var err error
	if x.fd != nil && lc.canSendfile() {
		err = lc.sendHeadFile(head, x.fd, x.size)
	} else {
		err = lc.writeHeadBody(head, x.data)
	}
	if err != nil {
		w.err = err // the connection closes after the answer
		return 0, true
	}
	return x.size, true
}

// writeHeadBody sends head and body with one writev; a failed write closes
// the connection.
func (c *limitedConn) writeHeadBody(head, body []byte) error {
	k := &c.cork
	c.moveDeadline()
	k.vec = [2][]byte{head, body}
	k.bufs = k.vec[:]
	_, err := k.bufs.WriteTo(c.Conn)
	k.vec, k.bufs = [2][]byte{}, nil
	if err != nil {
		c.Conn.Close()
	}
	return err
}
