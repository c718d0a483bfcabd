package proxy

import (
	"errors"
	"io"
	"syscall"
)

const canSendfile = true

// sendfileSlice bounds one sendfile call, so that the stall deadline moves
// between slices of a big file, as in limitedConn.ReadFrom.
const sendfileSlice = 1 << 20

// sendfileState is a connection's raw socket and the progress of the answer
// being sent, kept with the connection so that a request allocates nothing:
// the callbacks RawConn needs are made once per connection.
type sendfileState struct {
	sock     syscall.RawConn
	tried    bool
	head     []byte
	file     uintptr
	off, end int64
	err      error
	inFile   func(fd uintptr)
	inSock   func(fd uintptr) bool
}

// canSendfile says whether the connection is a socket sendfile can write to.
func (c *limitedConn) canSendfile() bool {
	st := &c.sf
	if !st.tried {
		st.tried = true
		if sc, ok := c.Conn.(syscall.Conn); ok {
			if rc, err := sc.SyscallConn(); err == nil {
				st.sock = rc
				st.inFile = func(fd uintptr) { c.sendLocked(fd) }
				st.inSock = st.toSocket
			}
		}
	}
	return st.sock != nil
}

// sendHeadFile writes head with MSG_MORE (held until the body follows) and
// then size bytes of kf from its start with sendfile.
func (c *limitedConn) sendHeadFile(head []byte, kf *keptFile, size int64) error {
	st := &c.sf
	st.head, st.off, st.end, st.err = head, 0, size, nil
	// Control holds a reference on the file: closing it at the drain waits
	// for this answer instead of freeing the descriptor under it.
	err := kf.rc.Control(st.inFile)
	st.head = nil
	if err == nil {
		err = st.err
	}
	if err != nil {
		c.Conn.Close()
	}
	return err
}

// sendLocked runs with the file's descriptor held.
func (c *limitedConn) sendLocked(file uintptr) {
	st := &c.sf
	st.file = file
	for st.err == nil && (len(st.head) > 0 || st.off < st.end) {
		c.moveDeadline()
		if err := st.sock.Write(st.inSock); err != nil {
			st.err = err
		}
	}
}

// toSocket sends what it can without blocking: false asks the poller to
// wait until the socket takes more.
func (st *sendfileState) toSocket(s uintptr) bool {
	for len(st.head) > 0 {
		n, err := syscall.SendmsgN(int(s), st.head, nil, nil, syscall.MSG_MORE)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			return false
		case err != nil:
			st.err = err
			return true
		}
		st.head = st.head[n:]
	}
	end := min(st.end, st.off+sendfileSlice)
	for st.off < end {
		n, err := syscall.Sendfile(int(s), int(st.file), &st.off, int(end-st.off))
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			return false
		case err != nil:
			st.err = err
			return true
		case n == 0:
			st.err = io.ErrUnexpectedEOF // the file is shorter than it was
			return true
		}
	}
	return true
}
