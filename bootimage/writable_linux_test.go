package bootimage

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMakeWritable: a physical root left read-only as a mount (as
// cfsboot-init leaves it) is writable between MakeWritable and restore.
func TestMakeWritable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts a tmpfs: needs root")
	}
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, ""); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(root, unix.MNT_DETACH) })
	if err := unix.MountSetattr(unix.AT_FDCWD, root, 0, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
		t.Skipf("mount_setattr: %v", err)
	}
	write := func(name string) error { return os.WriteFile(filepath.Join(root, name), []byte("x"), 0o644) }
	if err := write("before"); !errors.Is(err, unix.EROFS) {
		t.Fatalf("writing to the read-only mount: %v", err)
	}
	restore, err := MakeWritable(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := write("during"); err != nil {
		t.Errorf("writing after MakeWritable: %v", err)
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	if err := write("after"); !errors.Is(err, unix.EROFS) {
		t.Errorf("writing after restore: %v", err)
	}
}
