// Package fdio reads and writes bare file descriptors. A tree has tens of
// thousands of small files, and os.File's poller setup (four fcntl and an
// epoll_ctl per open) costs more system calls than such a file's own I/O.
package fdio

import (
	"io"

	"golang.org/x/sys/unix"
)

// File is an open file descriptor; its owner closes it.
type File int

// Read reads once (read(2), retried on EINTR); io.EOF at the end.
func (f File) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(int(f), p)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// ReadAt fills p from off (pread(2)), stopping early only at the end of
// the file (io.EOF) or on an error, as io.ReaderAt asks.
func (f File) ReadAt(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Pread(int(f), p[done:], off+int64(done))
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return done, err
		case n == 0:
			return done, io.EOF
		}
		done += n
	}
	return done, nil
}

// Write writes all of p (write(2), continued after short writes).
func (f File) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Write(int(f), p[done:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}
