package initramfs

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"cfsboot/mount"
)

// SetupState gives the read-only root a writable /etc (an overlay whose
// upper layer is kept per image under the state directory, so changes
// survive reboots of the same image, or in memory with
// rd.cfsboot.etc=transient) and a persistent /var, and leaves the root
// device reachable at /sysroot. With ro the root device stays read-only
// and both live in memory. State comes from a disk anyone may have written
// offline: its directories are resolved beneath the state directory (no
// absolute or climbing symlinks) and mounted nosuid,nodev.
func (s *Linux) SetupState(c Config) error {
	for _, d := range []string{"etc", "var"} {
		if st, err := os.Stat(filepath.Join(NewRoot, d)); err != nil || !st.IsDir() {
			return fmt.Errorf("expected a /%s directory in the image to mount state on, found none", d)
		}
	}
	top, rel := Sysroot, c.State
	if c.ReadOnly {
		if err := mountTmpfs(volatile); err != nil {
			return fmt.Errorf("volatile state: %w", err)
		}
		top, rel = volatile, "."
		s.Log("root device is read-only (ro): /etc and /var changes are not kept")
	}
	topFd, err := unix.Open(top, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("state: %s: %w", top, err)
	}
	defer unix.Close(topFd)
	state, err := mount.MkdirBeneath(topFd, rel)
	if err != nil {
		return fmt.Errorf("state directory %s: %w", filepath.Join(top, rel), err)
	}
	defer unix.Close(state)
	stateDir := filepath.Join(top, rel)

	etcState, etcDir := state, filepath.Join("deploy", c.Digest.String(), "etc")
	if c.Etc == EtcTransient && !c.ReadOnly {
		if err := mountTmpfs(transientEtc); err != nil {
			return fmt.Errorf("transient /etc: %w", err)
		}
		if etcState, err = unix.Open(transientEtc, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			return fmt.Errorf("transient /etc: %w", err)
		}
		defer unix.Close(etcState)
		etcDir, stateDir = ".", transientEtc
		s.Log("rd.cfsboot.etc=transient: /etc changes live in memory; the state directory's /etc is not used")
	}
	var layers [2]string
	for i, name := range []string{"upper", "work"} {
		fd, err := mount.MkdirBeneath(etcState, filepath.Join(etcDir, name))
		if err != nil {
			return fmt.Errorf("/etc state in %s: %w", stateDir, err)
		}
		layers[i], err = mount.FdPath(fd)
		unix.Close(fd)
		if err != nil {
			return err
		}
	}
	ov := mount.Overlay{Lower: []string{NewRoot + "/etc"}, Upper: layers[0], Work: layers[1], Untrusted: true}
	if err := ov.Mount(NewRoot + "/etc"); err != nil {
		return fmt.Errorf("/etc: %w", err)
	}
	varFd, err := mount.MkdirBeneath(state, "var")
	if err != nil {
		return fmt.Errorf("/var state in %s: %w", filepath.Join(top, rel), err)
	}
	defer unix.Close(varFd)
	if err := mount.BindUntrusted(varFd, NewRoot+"/var"); err != nil {
		return fmt.Errorf("/var: %w", err)
	}
	target := NewRoot + Sysroot
	if st, err := os.Stat(target); err != nil || !st.IsDir() {
		target = "/run/cfsboot/sysroot" // moves along with /run
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
	}
	return mount.Move(Sysroot, target)
}

func mountTmpfs(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return nil
}
