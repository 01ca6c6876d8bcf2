package verity

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// ComputeFile returns the fs-verity digest of the file at path. Large files
// have their data blocks hashed on all cores; the tree above is cheap.
//
// The file is read through its bare descriptor: os.File's poller setup
// costs more system calls than opening and reading a small file does,
// and trees have tens of thousands of small files.
func (a Algorithm) ComputeFile(path string) (Sum, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Sum{}, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return Sum{}, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return Sum{}, fmt.Errorf("%s: not a regular file", path)
	}
	s, err := a.ComputeReaderAt(fdReader(fd), st.Size)
	if err != nil {
		return Sum{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// fdReader reads a file descriptor with pread.
type fdReader int

// ReadAt fills p from off, stopping early only at the end of the file
// (io.EOF) or on an error, as io.ReaderAt asks.
func (fd fdReader) ReadAt(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Pread(int(fd), p[done:], off+int64(done))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return done, fmt.Errorf("read: %w", err)
		}
		if n == 0 {
			return done, io.EOF
		}
		done += n
	}
	return done, nil
}
