package mount

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// SwitchRoot makes newRoot the root filesystem and executes init there with
// argv and env: the API filesystems move along, the initramfs contents are
// deleted to give their memory back, and the initramfs is over-mounted.
// It returns only on failure.
func SwitchRoot(newRoot, init string, argv, env []string) error {
	for _, m := range []string{"/dev", "/proc", "/sys", "/run"} {
		if err := Move(m, filepath.Join(newRoot, m)); err != nil {
			return err
		}
	}
	if err := os.Chdir(newRoot); err != nil {
		return fmt.Errorf("switch_root: %w", err)
	}
	if err := freeInitramfs(); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("switch_root: move %s to /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("switch_root: chroot: %w", err)
	}
	if err := os.Chdir("/"); err != nil {
		return fmt.Errorf("switch_root: %w", err)
	}
	if err := unix.Exec(init, argv, env); err != nil {
		return fmt.Errorf("switch_root: exec %s: %w", init, err)
	}
	return nil
}

// freeInitramfs deletes the files of the initramfs (rootfs is ramfs or
// tmpfs and cannot be unmounted), staying on its filesystem so nothing
// mounted below it is touched.
func freeInitramfs() error {
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return fmt.Errorf("switch_root: statfs /: %w", err)
	}
	if st.Type != unix.RAMFS_MAGIC && st.Type != unix.TMPFS_MAGIC {
		return fmt.Errorf("switch_root: / is not an initramfs (filesystem magic %#x); refusing to delete it", st.Type)
	}
	var root unix.Stat_t
	if err := unix.Lstat("/", &root); err != nil {
		return err
	}
	removeOnDevice("/", root.Dev)
	return nil
}

func removeOnDevice(dir string, dev uint64) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil || st.Dev != dev {
			continue // a mount point: not ours to delete
		}
		if e.IsDir() {
			removeOnDevice(p, dev)
		}
		os.Remove(p)
	}
}
