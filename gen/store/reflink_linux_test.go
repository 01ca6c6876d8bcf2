package store_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"cfsboot/gen/erofs"
	"cfsboot/gen/source"
	"cfsboot/gen/store"
	"cfsboot/gen/store/storetest"
	"cfsboot/verity"
)

// On a filesystem with reflinks (XFS here), objects share the source's
// blocks instead of copying them, and are still named by their content.
func TestReflinkedObjects(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount an XFS image")
	}
	if _, err := exec.LookPath("mkfs.xfs"); err != nil {
		t.Skip("no mkfs.xfs")
	}
	img := filepath.Join(t.TempDir(), "xfs.img")
	mnt := t.TempDir()
	if out, err := exec.Command("truncate", "-s", "320M", img).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := exec.Command("mkfs.xfs", "-q", "-m", "reflink=1", img).CombinedOutput(); err != nil {
		t.Skipf("mkfs.xfs: %v: %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("mount: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	src := filepath.Join(mnt, "src")
	os.Mkdir(src, 0o755)
	data := bytes.Repeat([]byte("reflinked content "), 1<<20) // 18 MiB
	if err := os.WriteFile(filepath.Join(src, "big"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	unix.Sync()
	free := func() int64 {
		var st unix.Statfs_t
		unix.Statfs(mnt, &st)
		return int64(st.Bfree) * st.Bsize
	}
	before := free()
	dir := filepath.Join(mnt, "store")
	if _, err := create(dir, src, true); err != nil {
		t.Fatal(err)
	}
	if used := before - free(); used > 4<<20 {
		t.Errorf("the store used %d bytes for an 18 MiB file: not reflinked", used)
	}
	want := verity.SHA256.ComputeBytes(data)
	st, err := store.OpenExisting(dir, store.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got, err := os.ReadFile(st.ObjectPath(want)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("object %s: %v", want, err)
	}
	storetest.FsckClean(t, dir)
	// A file that changes after it was listed is still refused.
	root, err := source.Walk(src, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	os.Truncate(filepath.Join(src, "big"), 1<<20)
	if _, _, err := st.CommitTree(root, store.CommitOptions{Erofs: erofs.DefaultOptions()}); err == nil {
		t.Fatal("a truncated file was committed")
	}
}
