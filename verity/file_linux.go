package verity

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"cfsboot/internal/fdio"
)

// ComputeFile returns the fs-verity digest of the file at path. Large files
// have their data blocks hashed on all cores; the tree above is cheap.
//
// The file is read through its bare descriptor (package fdio says why).
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
	s, err := a.ComputeReaderAt(fdio.File(fd), st.Size)
	if err != nil {
		return Sum{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}
