//go:build unix

package logpipe

import (
	"errors"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/slipway-dev/slipway/internal/redact"
)

// The keeper is one helper process for every instance a Driver starts: the
// Driver hands it, on a Unix socket, each instance's output pipe (the read
// end) and log file with the instance's secrets, and it pipes them all. One
// process per Driver instead of one per instance start: an instance start
// costs a message, not an exec of the 40 MB slipway binary.
//
// It runs in a session of its own (a terminal's Ctrl-C to serve does not
// reach it) and ignores SIGTERM, so that it keeps logging while serve
// restarts and catches the last words of instances stopped with SIGTERM.
// When serve closes its end of the socket (serve exited) the keeper takes
// no more pipes and exits once the last one has ended. A pipe ends when
// everything holding its write end has exited, or when its log file has
// been removed (the instance was stopped, but something it started and
// that left its process group still holds the pipe).

// ctlFD is the keeper's end of the control socket.
const ctlFD = 3

// maxFrame bounds a message's payload (the id and the secrets).
const maxFrame = 16 << 20

// sweepEvery is how often the keeper looks for pipes whose log was removed.
var sweepEvery = 5 * time.Second

// Send hands a keeper, over the control socket ctl, an instance's output
// (out, the pipe's read end) and its log file (opened O_APPEND), with the
// instance's secrets. The caller may close its copies once Send returns:
// the descriptors are in flight to the keeper. Calls on one socket must
// not overlap.
func Send(ctl int, out, logf *os.File, id string, secrets []string) error {
	payload := id + "\n" + EncodeSecrets(secrets)
	if len(payload) > maxFrame {
		return errors.New("sending to the log keeper: secrets too large")
	}
	size := len(payload)
	frame := append([]byte{byte(size >> 24), byte(size >> 16), byte(size >> 8), byte(size)}, payload...)
	oob := syscall.UnixRights(int(out.Fd()), int(logf.Fd()))
	n, err := sendmsg(ctl, frame, oob)
	for err == nil && n < len(frame) {
		// A stream socket may take part of it; the rest carries no descriptors.
		var m int
		m, err = syscall.Write(ctl, frame[n:])
		n += m
	}
	if err != nil {
		return errors.New("sending to the log keeper: " + err.Error())
	}
	return nil
}

func sendmsg(fd int, p, oob []byte) (int, error) {
	for {
		n, err := syscall.SendmsgN(fd, p, oob, nil, 0)
		if !errors.Is(err, syscall.EINTR) {
			return n, err
		}
	}
}

// keeper is the helper's state: the pipes it is copying.
type keeper struct {
	wg    sync.WaitGroup
	mu    sync.Mutex
	pipes map[*os.File]*os.File // pipe read end -> its log file
}

// runKeeper is the helper's main (see the package doc).
func runKeeper() int {
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGPIPE)
	k := &keeper{pipes: map[*os.File]*os.File{}}
	go k.sweep()
	for {
		fds, payload, err := recvFrame(ctlFD)
		if err != nil {
			break // serve is gone (or sent garbage): take no more
		}
		if len(fds) != 2 {
			for _, fd := range fds {
				syscall.Close(fd)
			}
			continue
		}
		k.start(fds[0], fds[1], payload)
	}
	syscall.Close(ctlFD)
	k.wg.Wait()
	return 0
}

// start pipes one instance's output until it ends.
func (k *keeper) start(outFD, logFD int, payload []byte) {
	// Non-blocking, the pipe is read through the runtime's poller instead
	// of one blocked thread per instance, and Close (by sweep) interrupts
	// a read. The flag is on the read end's file description, which only
	// the keeper holds; the instance's write end is not affected.
	syscall.SetNonblock(outFD, true)
	out := os.NewFile(uintptr(outFD), "output")
	logf := os.NewFile(uintptr(logFD), "log")
	_, secrets, _ := cutLine(payload)
	red := redact.New(SecretValues(secrets)...)
	k.mu.Lock()
	k.pipes[out] = logf
	k.mu.Unlock()
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		Pipe(out, logf, red, time.Now)
		k.mu.Lock()
		delete(k.pipes, out)
		k.mu.Unlock()
		out.Close()
		logf.Close()
	}()
}

// sweep ends the pipes whose log file was removed: Stop removes an
// instance's log after its process group is gone, so what still holds the
// pipe left the group; it gets EPIPE, as it did when each instance had a
// helper of its own in its group.
func (k *keeper) sweep() {
	for range time.Tick(sweepEvery) {
		k.mu.Lock()
		for out, logf := range k.pipes {
			var st syscall.Stat_t
			if err := syscall.Fstat(int(logf.Fd()), &st); err == nil && st.Nlink == 0 {
				out.Close()
				delete(k.pipes, out)
			}
		}
		k.mu.Unlock()
	}
}

// recvFrame reads one message: a 4-byte length, the payload, and the
// descriptors sent with it. It never reads past the message, since a read
// that ran into the next one would drop that one's descriptors.
func recvFrame(fd int) ([]int, []byte, error) {
	var head [4]byte
	oob := make([]byte, syscall.CmsgSpace(2*4))
	var fds []int
	got := 0
	for got < len(head) {
		n, oobn, _, _, err := syscall.Recvmsg(fd, head[got:], oob, 0)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if n == 0 {
			return nil, nil, io.EOF
		}
		if oobn > 0 {
			fds = append(fds, parseRights(oob[:oobn])...)
		}
		got += n
	}
	size := uint32(head[0])<<24 | uint32(head[1])<<16 | uint32(head[2])<<8 | uint32(head[3])
	if size > maxFrame {
		closeAll(fds)
		return nil, nil, errors.New("frame too large")
	}
	payload := make([]byte, size)
	for got := 0; got < len(payload); {
		n, err := syscall.Read(fd, payload[got:])
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || n == 0 {
			closeAll(fds)
			return nil, nil, io.ErrUnexpectedEOF
		}
		got += n
	}
	return fds, payload, nil
}

func parseRights(oob []byte) []int {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for _, m := range msgs {
		if r, err := syscall.ParseUnixRights(&m); err == nil {
			fds = append(fds, r...)
		}
	}
	return fds
}

func closeAll(fds []int) {
	for _, fd := range fds {
		syscall.Close(fd)
	}
}

func cutLine(b []byte) (line, rest []byte, ok bool) {
	for i, c := range b {
		if c == '\n' {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}
