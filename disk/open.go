package disk

import (
	"fmt"
	"io"
	"os"
)

// DefaultFileSize is the size of a disk file made with size 0.
const DefaultFileSize = 8 << 30

// Size is the size a disk to install to will have: a block device's own
// (size must be 0 or no larger), or size bytes (0: DefaultFileSize) for a
// regular file, new or not. It checks the path without changing it.
func Size(path string, size int64) (int64, error) {
	st, err := os.Stat(path)
	if err == nil && st.Mode()&os.ModeDevice != 0 {
		f, err := os.Open(path)
		if err != nil {
			return 0, fmt.Errorf("open disk: %w", err)
		}
		defer f.Close()
		devSize, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			return 0, fmt.Errorf("disk %s: size: %w", path, err)
		}
		if size > devSize {
			return 0, fmt.Errorf("disk %s has %d bytes, %d asked for", path, devSize, size)
		}
		return devSize, nil
	}
	if err != nil && !os.IsNotExist(err) {
		return 0, fmt.Errorf("open disk: %w", err)
	}
	if err == nil && !st.Mode().IsRegular() {
		return 0, fmt.Errorf("disk %s is neither a block device nor a regular file", path)
	}
	if size == 0 {
		size = DefaultFileSize
	}
	if size < 0 || size%SectorSize != 0 {
		return 0, fmt.Errorf("disk file %s: size %d must be a positive multiple of %d", path, size, SectorSize)
	}
	return size, nil
}

// Open opens the disk to install to for writing, after Size: a block
// device exclusively; a regular file is created or truncated to size
// bytes (sparse).
func Open(path string, size int64) (*os.File, int64, error) {
	size, err := Size(path, size)
	if err != nil {
		return nil, 0, err
	}
	if st, err := os.Stat(path); err == nil && st.Mode()&os.ModeDevice != 0 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_EXCL, 0)
		if err != nil {
			return nil, 0, fmt.Errorf("open disk: %w", err)
		}
		return f, size, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, 0, fmt.Errorf("open disk: %w", err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("disk %s: %w", path, err)
	}
	return f, size, nil
}

// CopyAt copies the file at src into w at offset, refusing one longer
// than limit (a filesystem image that would spill out of its partition).
func CopyAt(w io.WriterAt, offset, limit int64, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy into disk: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("copy into disk: %w", err)
	}
	if st.Size() > limit {
		return fmt.Errorf("%s has %d bytes, the partition %d", src, st.Size(), limit)
	}
	if _, err := io.Copy(io.NewOffsetWriter(w, offset), f); err != nil {
		return fmt.Errorf("copy %s into disk at %d: %w", src, offset, err)
	}
	return nil
}
