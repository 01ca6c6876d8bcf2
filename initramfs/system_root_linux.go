package initramfs

import (
	"errors"
	"fmt"
	"os"
	"path"
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
	return volatileRoot(dev.Path)
}

// volatileRoot links /run/systemd/volatile-root to the root device, as
// composefs-setup-root does (systemd's gpt-auto and growfs look for the
// root's block device there, since / is an overlay without one).
func volatileRoot(dev string) error {
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return fmt.Errorf("root device %s: %w", dev, err)
	}
	if err := os.MkdirAll("/run/systemd", 0o755); err != nil {
		return err
	}
	target := fmt.Sprintf("/dev/block/%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	if err := os.Symlink(target, volatileRootLink); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("creating %s: %w", volatileRootLink, err)
	}
	return nil
}

const volatileRootLink = "/run/systemd/volatile-root"

// OpenImage opens images/<name> in the store. Everything below Sysroot
// is on an untrusted disk: the store directory and the image's symlink
// are resolved beneath their directories (a link that climbs out or is
// absolute is refused), and the final file is opened only if regular.
func (s *Linux) OpenImage(store, name string) (int, error) {
	storeFd, err := openStore(store)
	if err != nil {
		return -1, err
	}
	defer unix.Close(storeFd)
	return openImageIn(storeFd, name)
}

func openImageIn(storeFd int, name string) (int, error) {
	rel := "images/" + name
	// Absent means the name itself is missing; a dangling symlink is a
	// present, broken image.
	lfd, err := unix.Openat2(storeFd, rel, &unix.OpenHow{Flags: unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS})
	if errors.Is(err, unix.ENOENT) {
		return -1, fmt.Errorf("%s: %w", rel, ErrImageAbsent)
	}
	if err != nil {
		return -1, explainResolve(err)
	}
	unix.Close(lfd)
	pfd, err := unix.Openat2(storeFd, rel, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return -1, errors.New("found a symlink to a file that does not exist")
		}
		return -1, explainResolve(err)
	}
	return reopenRegular(pfd)
}

// openStore opens the store directory beneath Sysroot.
func openStore(store string) (int, error) {
	root, err := unix.Open(Sysroot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(root)
	fd, err := unix.Openat2(root, store, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return -1, fmt.Errorf("store %s: %w", path.Join(Sysroot, store), explainResolve(err))
	}
	return fd, nil
}

func explainResolve(err error) error {
	if errors.Is(err, unix.EXDEV) {
		return fmt.Errorf("found a symlink leading out of the store (absolute and climbing links are refused): %w", err)
	}
	return err
}

// reopenRegular opens the file pfd (O_PATH, closed here) for reading only
// if it is a regular file. The file is on an untrusted filesystem: a plain
// open of a FIFO blocks, of a device node opens the device. O_PATH opens
// nothing; the file is checked, then reopened through /proc/self/fd.
func reopenRegular(pfd int) (int, error) {
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

func (s *Linux) Measure(fd int) (verity.Sum, error) { return verity.MeasureSum(fd) }

// MountComposefs mounts the image with the source name composefs:<hex>
// (bootc finds the booted deployment by it), and with [root] transient a
// tmpfs overlay on top, named transient:composefs=<hex> as bootc does.
func (s *Linux) MountComposefs(img Image, store string, transientRoot bool) error {
	for _, d := range []string{imageMount, NewRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	storeFd, err := openStore(store)
	if err != nil {
		return err
	}
	defer unix.Close(storeFd)
	objFd, err := unix.Openat2(storeFd, "objects", &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return fmt.Errorf("store %s: objects: %w", path.Join(Sysroot, store), explainResolve(err))
	}
	objects, err := mount.FdPath(objFd)
	unix.Close(objFd)
	if err != nil {
		return err
	}
	if err := mount.EROFS(img.Fd, imageMount); err != nil {
		if errors.Is(err, unix.EIO) {
			return fmt.Errorf("the verified image failed fs-verity checks while being read (its blocks changed on disk after it was sealed): %w", err)
		}
		return err
	}
	ov := mount.Overlay{Source: "composefs:" + img.Name(), Lower: []string{imageMount}, Data: []string{objects}, Composefs: true, Verity: mount.VerityRequire}
	if !img.Verified {
		ov.Verity = ""
	}
	if err := ov.Mount(NewRoot); err != nil {
		return err
	}
	if !transientRoot {
		return nil
	}
	s.Log("setup-root-conf [root] transient: changes to / live in memory")
	if err := transientOverlay("transient:composefs="+img.Name(), NewRoot, "/run/cfsboot/transient-root", false); err != nil {
		return fmt.Errorf("transient root: %w", err)
	}
	return nil
}
