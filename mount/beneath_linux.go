package mount

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MkdirBeneath opens directory rel below the directory open at root,
// creating what is missing (mode 0755), and returns an O_PATH descriptor of
// it. Every step resolves with RESOLVE_BENEATH: symlinks that stay below
// root are followed (bootc's deploy/<id>/var -> ../../os/default/var), an
// absolute symlink or one that climbs out of root is an error. The
// directory tree is on a disk anyone may have written offline.
func MkdirBeneath(root int, rel string) (int, error) {
	var comps []string
	if clean := strings.Trim(path.Clean(rel), "/"); clean != "." && clean != "" {
		comps = strings.Split(clean, "/")
	}
	for i := range comps {
		sub := path.Join(comps[:i+1]...)
		fd, err := openBeneath(root, sub)
		if errors.Is(err, unix.ENOENT) {
			parent := path.Join(comps[:i]...)
			if parent == "" {
				parent = "."
			}
			err = mkdirIn(root, parent, comps[i])
			if err == nil || errors.Is(err, unix.EEXIST) {
				fd, err = openBeneath(root, sub)
			}
		}
		if err != nil {
			return -1, explainBeneath(sub, err)
		}
		if i == len(comps)-1 {
			return fd, nil
		}
		unix.Close(fd)
	}
	return openBeneath(root, ".")
}

func openBeneath(root int, rel string) (int, error) {
	return unix.Openat2(root, rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	})
}

// mkdirIn creates name in parent (resolved beneath root); mkdirat does not
// follow a symlink in the last component, so a dangling link is EEXIST.
func mkdirIn(root int, parent, name string) error {
	pfd, err := openBeneath(root, parent)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	return unix.Mkdirat(pfd, name, 0o755)
}

func explainBeneath(rel string, err error) error {
	switch {
	case errors.Is(err, unix.EXDEV):
		return fmt.Errorf("%s: a symlink leads out of the directory (absolute and climbing links are refused): %w", rel, err)
	case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.EEXIST):
		return fmt.Errorf("%s: expected a directory, found something else: %w", rel, err)
	}
	return fmt.Errorf("%s: %w", rel, err)
}

// FdPath is the path through which the descriptor's directory is reached
// now, for interfaces that take path strings (overlayfs' upperdir).
func FdPath(fd int) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlink("/proc/self/fd/"+strconv.Itoa(fd), buf)
	if err != nil {
		return "", fmt.Errorf("path of descriptor %d: %w", fd, err)
	}
	return string(buf[:n]), nil
}
