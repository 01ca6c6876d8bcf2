package initramfs

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"cfsboot/initramfs/blockdev"
	"cfsboot/mount"
	"cfsboot/verity"
)

// MountRoot mounts the root device nosuid,nodev: it is writable by anyone
// who has the disk, and nothing on it but verified images and objects is
// trusted.
func (s *Linux) MountRoot(dev blockdev.Device, fstype string, readOnly bool, flags string) error {
	if err := os.MkdirAll(Sysroot, 0o755); err != nil {
		return err
	}
	mflags := uintptr(unix.MS_NOSUID | unix.MS_NODEV)
	if readOnly {
		mflags |= unix.MS_RDONLY
	}
	if err := unix.Mount(dev.Path, Sysroot, fstype, mflags, flags); err != nil {
		return fmt.Errorf("mount %s (%s, options %q) on %s: %w", dev.Path, fstype, flags, Sysroot, err)
	}
	return nil
}

func (s *Linux) OpenImage(path string) (int, error) { return openRegular(path) }

// openRegular opens path for reading only if it is a regular file. The
// name is on an untrusted filesystem: a plain open of a FIFO blocks, of a
// device node opens the device. So it is opened O_PATH (which opens
// nothing) without following a symlink, checked, and reopened through
// /proc/self/fd.
func openRegular(path string) (int, error) {
	pfd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return -1, errors.New("found no such file")
	}
	if err != nil {
		return -1, err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return -1, err
	}
	if kind := st.Mode & unix.S_IFMT; kind != unix.S_IFREG {
		return -1, fmt.Errorf("found %s, not a regular file", fileKind(kind))
	}
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(pfd), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return -1, err
	}
	var again unix.Stat_t
	if err := unix.Fstat(fd, &again); err != nil || again.Dev != st.Dev || again.Ino != st.Ino {
		unix.Close(fd)
		return -1, errors.New("the file changed while it was opened")
	}
	return fd, nil
}

func fileKind(mode uint32) string {
	switch mode {
	case unix.S_IFLNK:
		return "a symlink, which is not followed"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFDIR:
		return "a directory"
	}
	return fmt.Sprintf("a file of type %o", mode)
}

func (s *Linux) Measure(fd int) (verity.Digest, error) { return verity.Measure(fd) }

func (s *Linux) MountComposefs(imageFd int, objectsDir string) error {
	for _, d := range []string{imageMount, NewRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := mount.EROFS(imageFd, imageMount); err != nil {
		if errors.Is(err, unix.EIO) {
			return fmt.Errorf("the verified image failed fs-verity checks while being read (its blocks changed on disk after it was sealed): %w", err)
		}
		return err
	}
	ov := mount.Overlay{Lower: []string{imageMount}, Data: []string{objectsDir}, Composefs: true, Verity: mount.VerityRequire}
	return ov.Mount(NewRoot)
}
