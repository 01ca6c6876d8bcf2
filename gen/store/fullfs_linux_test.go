package store_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"cfsboot/gen/store"
	"cfsboot/gen/store/storetest"
)

// fsck writes nothing: on a full filesystem, and on a read-only one, it
// checks and reports as usual.
func TestFsckOnFullAndReadOnlyFilesystem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	dir := filepath.Join(mnt, "store")
	src := t.TempDir()
	makeTree(t, src, 30, 0, 1)
	if _, err := create(dir, src, true); err != nil {
		t.Fatal(err)
	}
	// Fill the filesystem to the last block.
	f, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for err == nil {
		_, err = f.Write(chunk)
	}
	f.Close()
	if !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("filling: %v", err)
	}
	storetest.FsckClean(t, dir)
	// A create on the full filesystem fails and leaves no temporary file.
	more := t.TempDir()
	makeTree(t, more, 5, 0, 2)
	if _, err := create(dir, more, true); !errors.Is(err, unix.ENOSPC) {
		t.Errorf("create on a full filesystem: %v", err)
	}
	if tmps, _ := filepath.Glob(filepath.Join(dir, "objects", ".tmp-*")); len(tmps) != 0 {
		t.Errorf("temporary files left: %v", tmps)
	}
	if err := unix.Mount("", mnt, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	storetest.FsckClean(t, dir)
	// Exclusive locks work on a read-only filesystem too.
	st, err := store.OpenExisting(dir, store.OpenOptions{Lock: store.Exclusive, NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if removed, _, err := st.GC(true); err != nil || len(removed) != 0 {
		t.Errorf("gc dry run: %v %v", removed, err)
	}
}
