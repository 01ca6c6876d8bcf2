package verity

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"cfsboot/internal/fdio"
)

// ComputeFile returns the fs-verity digest of the file at path. Large files
// have their data blocks hashed on all cores; the tree above is cheap.
//
// The file is read through its bare descriptor (package fdio says why).
func (a Algorithm) ComputeFile(path string) (Sum, error) {
	fd, size, err := openRegular(path)
	if err != nil {
		return Sum{}, err
	}
	defer unix.Close(fd)
	s, err := a.ComputeReaderAt(fdio.File(fd), size)
	if err != nil {
		return Sum{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// ComputeFiles sets sums[i] to the fs-verity digest of the file at
// paths[i], as ComputeFile does, but hashes the blocks of small files
// (up to 256 KiB) of several files together (see batch). It stops at the
// first error.
func (a Algorithm) ComputeFiles(paths []string, sums []Sum) error {
	if len(sums) != len(paths) {
		return fmt.Errorf("fs-verity digests of %d files into %d sums", len(paths), len(sums))
	}
	b := getBatch(a)
	defer batches[a].Put(b)
	for i, path := range paths {
		if err := b.addFile(path, i, sums); err != nil {
			b.reset()
			return err
		}
	}
	b.flush(sums)
	return nil
}

// addFile reads a small file into b, or digests a large one into sums[i]
// at once.
func (b *batch) addFile(path string, i int, sums []Sum) error {
	fd, size, err := openRegular(path)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if size > batchMaxBlocks*BlockSize {
		if sums[i], err = b.alg.ComputeReaderAt(fdio.File(fd), size); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	}
	n, err := fdio.File(fd).ReadAt(b.add(int(size), i, sums), 0)
	b.setSize(n) // a file that shrank is digested as read, as Compute does
	if err != nil && err != io.EOF {
		return &os.PathError{Op: "read", Path: path, Err: err}
	}
	return nil
}

// openRegular opens the regular file at path for reading and returns its
// size.
func openRegular(path string) (fd int, size int64, err error) {
	fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, 0, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, 0, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("%s: not a regular file", path)
	}
	return fd, st.Size, nil
}
