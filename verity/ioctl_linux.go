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

// Enable turns on fs-verity (SHA-256, 4096-byte blocks, no salt, no
// signature) for the file open at fd. The file must be open read-only and
// have no writers. Enabling an already-protected file is not an error.
func Enable(fd int) error {
	arg := unix.FsverityEnableArg{
		Version:        1,
		Hash_algorithm: unix.FS_VERITY_HASH_ALG_SHA256,
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
		return fmt.Errorf("enable fs-verity: %w", errno)
	}
}

// measureArg is struct fsverity_digest with room for a SHA-256 digest.
type measureArg struct {
	alg  uint16
	size uint16
	d    [64]byte // the kernel may report up to SHA-512
}

// Measure returns the fs-verity digest the kernel holds for the file open at
// fd: the value it enforces on every read, so it can be trusted where a
// userspace hash of the content could race with a writer.
func Measure(fd int) (Digest, error) {
	arg := measureArg{size: uint16(len(measureArg{}.d))}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.FS_IOC_MEASURE_VERITY, uintptr(unsafe.Pointer(&arg)))
	switch errno {
	case 0:
	case unix.ENODATA:
		return Digest{}, ErrNotEnabled
	case unix.EOPNOTSUPP, unix.ENOTTY:
		return Digest{}, ErrNotSupported
	default:
		return Digest{}, fmt.Errorf("measure fs-verity: %w", errno)
	}
	if arg.alg != unix.FS_VERITY_HASH_ALG_SHA256 || arg.size != Size {
		return Digest{}, fmt.Errorf("measure fs-verity: hash algorithm %d with %d-byte digest, want SHA-256", arg.alg, arg.size)
	}
	var d Digest
	copy(d[:], arg.d[:Size])
	return d, nil
}
