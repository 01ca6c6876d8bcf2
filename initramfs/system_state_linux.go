package initramfs

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"cfsboot/initramfs/setuproot"
	"cfsboot/mount"
)

// SetupState gives the read-only root its /etc and /var as
// composefs-setup-root does, from the deployment's state directory
// state/deploy/<image>/{etc,var} (created when missing): by default an
// overlay on /etc whose upper layer persists there, and /var bound from
// there (bootc makes deploy/<image>/var a link to the shared
// ../../os/default/var). The setup-root configuration and rd.cfsboot.etc=
// choose none, bind, overlay or transient; rd.cfsboot.var=shared keeps one
// state/var for every image. With ro the root device stays read-only and
// the state lives in memory. The root device ends up read-only at /sysroot
// in the new root, as bootc leaves it. State comes from a disk anyone may
// have written offline: its directories are resolved beneath the state
// directory (no absolute or climbing symlinks) and mounted nosuid,nodev.
func (s *Linux) SetupState(c Config, deployment string) error {
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
	st := stateDir{fd: state, path: filepath.Join(top, rel)}

	etcWhy := "setup-root-conf [etc]"
	if c.Etc != "" {
		etcWhy = "rd.cfsboot.etc=" + c.Etc
	}
	if err := s.mountState(st, "etc", filepath.Join("deploy", deployment, "etc"), c.EtcMount(), etcWhy); err != nil {
		return err
	}
	varDir := filepath.Join("deploy", deployment, "var")
	if c.Var == VarShared {
		varDir = "var"
	}
	if err := s.mountState(st, "var", varDir, c.Setup.VarMount(), "setup-root-conf [var]"); err != nil {
		return err
	}
	target := NewRoot + Sysroot
	if st, err := os.Stat(target); err != nil || !st.IsDir() {
		target = "/run/cfsboot/sysroot" // moves along with /run
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
	}
	if err := mount.Move(Sysroot, target); err != nil {
		return err
	}
	// Read-only as a mount (the state bound from it stays writable): the
	// booted system changes the store only through its tools, which
	// remount it.
	if err := unix.MountSetattr(unix.AT_FDCWD, target, 0, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
		return fmt.Errorf("making %s read-only: %w", target, err)
	}
	return nil
}

// stateDir is the open state directory.
type stateDir struct {
	fd   int
	path string
}

// mountState mounts /<dir> of the new root as mode says, from rel below
// the state directory.
func (s *Linux) mountState(st stateDir, dir, rel string, mode setuproot.MountType, why string) error {
	target := NewRoot + "/" + dir
	switch mode {
	case setuproot.None:
		s.Log(fmt.Sprintf("%s: /%s is the image's own (mount = none)", why, dir))
		return nil
	case setuproot.Transient:
		s.Log(fmt.Sprintf("%s: /%s changes live in memory; the state directory's /%s is not used", why, dir, dir))
		if err := transientOverlay("transient", target, "/run/cfsboot/transient-"+dir, true); err != nil {
			return fmt.Errorf("transient /%s: %w", dir, err)
		}
		return nil
	}
	fd, err := mount.MkdirBeneath(st.fd, rel)
	if err != nil {
		return fmt.Errorf("/%s state in %s: %w", dir, st.path, err)
	}
	defer unix.Close(fd)
	if mode == setuproot.Bind {
		if err := mount.BindUntrusted(fd, target); err != nil {
			return fmt.Errorf("/%s: %w", dir, err)
		}
		return nil
	}
	var layers [2]string
	for i, name := range []string{"upper", "work"} {
		lfd, err := mount.MkdirBeneath(fd, name)
		if err != nil {
			return fmt.Errorf("/%s state in %s: %w", dir, filepath.Join(st.path, rel), err)
		}
		layers[i], err = mount.FdPath(lfd)
		unix.Close(lfd)
		if err != nil {
			return err
		}
	}
	ov := mount.Overlay{Source: "overlay", Lower: []string{target}, Upper: layers[0], Work: layers[1], Untrusted: true}
	if err := ov.Mount(target); err != nil {
		return fmt.Errorf("/%s: %w", dir, err)
	}
	return nil
}

// transientOverlay mounts over target an overlay of it whose upper layer
// is a fresh tmpfs at dir.
func transientOverlay(source, target, dir string, untrusted bool) error {
	if err := mountTmpfs(dir); err != nil {
		return err
	}
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	if err := os.Mkdir(upper, 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(work, 0o700); err != nil {
		return err
	}
	ov := mount.Overlay{Source: source, Lower: []string{target}, Upper: upper, Work: work, Untrusted: untrusted}
	return ov.Mount(target)
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
