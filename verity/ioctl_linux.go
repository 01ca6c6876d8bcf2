package verity

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

var (
	// ErrNotSupported: the file's filesystem (or the kernel) has no
	// fs-verity, so the file cannot be protected or measured.
	ErrNotSupported = errors.New("filesystem does not support fs-verity (kernel needs CONFIG_FS_VERITY; ext4 needs 'mkfs.ext4 -O verity' or 'tune2fs -O verity')")
	// ErrNotEnabled: the filesystem supports fs-verity but this file has
	// none enabled.
	ErrNotEnabled = errors.New("file does not have fs-verity enabled")
)

// Enable turns on fs-verity with SHA-256 for the file open at fd; see
// EnableAlgorithm.
func Enable(fd int) error { return EnableAlgorithm(fd, SHA256) }

// EnableAlgorithm turns on fs-verity (alg, 4096-byte blocks, no salt, no
// signature) for the file open at fd. The file must be open read-only and
// have no writers. Enabling an already-protected file is not an error, even
// with another algorithm: callers compare what Measure reports.
func EnableAlgorithm(fd int, alg Algorithm) error {
	if !alg.Valid() {
		return fmt.Errorf("enable fs-verity: unknown hash algorithm %d", uint8(alg))
	}
	arg := unix.FsverityEnableArg{
		Version:        1,
		Hash_algorithm: uint32(alg),
		Block_size:     BlockSize,
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.FS_IOC_ENABLE_VERITY, uintptr(unsafe.Pointer(&arg)))
	switch errno {
	case 0, unix.EEXIST:
		return nil
	case unix.EOPNOTSUPP, unix.ENOTTY:
		return ErrNotSupported
	case unix.ETXTBSY:
		return fmt.Errorf("enable fs-verity: file is open for writing: %w", errno)
	default:
		return fmt.Errorf("enable fs-verity (%s): %w", alg, errno)
	}
}

// measureArg is struct fsverity_digest with room for the largest digest.
type measureArg struct {
	alg  uint16
	size uint16
	d    [MaxSize]byte
}

// MeasureSum returns the fs-verity digest the kernel holds for the file open
// at fd, with the algorithm the file was sealed with: the value the kernel
// enforces on every read, so it can be trusted where a userspace hash of the
// content could race with a writer. Compare the whole Sum (algorithm and
// digest) with the expected one.
func MeasureSum(fd int) (Sum, error) {
	arg := measureArg{size: MaxSize}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.FS_IOC_MEASURE_VERITY, uintptr(unsafe.Pointer(&arg)))
	switch errno {
	case 0:
	case unix.ENODATA:
		return Sum{}, ErrNotEnabled
	case unix.EOPNOTSUPP, unix.ENOTTY:
		return Sum{}, ErrNotSupported
	default:
		return Sum{}, fmt.Errorf("measure fs-verity: %w", errno)
	}
	alg := Algorithm(arg.alg)
	if uint16(alg) != arg.alg || !alg.Valid() || int(arg.size) != alg.Size() {
		return Sum{}, fmt.Errorf("measure fs-verity: unknown hash algorithm %d with %d-byte digest", arg.alg, arg.size)
	}
	return NewSum(alg, arg.d[:arg.size])
}

// Measure returns the kernel's fs-verity digest for the file open at fd,
// which must be sealed with SHA-256; see MeasureSum.
func Measure(fd int) (Digest, error) {
	s, err := MeasureSum(fd)
	if err != nil {
		return Digest{}, err
	}
	if s.Algorithm() != SHA256 {
		return Digest{}, fmt.Errorf("measure fs-verity: file is sealed with %s, want sha256", s.Algorithm())
	}
	return s.sha256(), nil
}
