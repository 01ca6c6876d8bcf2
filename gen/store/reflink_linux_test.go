package store_test

import (
	"bytes"
	"fmt"
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

// mountXFS mounts a fresh XFS with reflinks (made in a loop file) for the
// test and returns where.
func mountXFS(t *testing.T) string {
	t.Helper()
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
	return mnt
}

// On a filesystem with reflinks (XFS here), objects share the source's
// blocks instead of copying them, are still named by their content, and
// a file twice in the tree is cloned once.
func TestReflinkedObjects(t *testing.T) {
	mnt := mountXFS(t)
	src := filepath.Join(mnt, "src")
	os.Mkdir(src, 0o755)
	data := bytes.Repeat([]byte("reflinked content "), 1<<20) // 18 MiB
	for _, name := range []string{"big", "same"} {
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
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
	if objs := objects(t, st); len(objs) != 1 {
		t.Errorf("objects %v, want one", objs)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "objects", "*", ".tmp-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
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

// A create killed at any point of a reflinked fill (temporary objects
// beside their names) leaves a store that fsck finds clean, and gc
// removes what it left.
func TestReflinkCreateKilledAtRandomPoints(t *testing.T) {
	mnt := mountXFS(t)
	dir := filepath.Join(mnt, "store")
	storetest.KillAtRandom(t, dir, 40, func(run int) *exec.Cmd {
		src := filepath.Join(mnt, fmt.Sprintf("src%d", run))
		makeTree(t, src, 40, 20, int64(run+1))
		return helper("create", dir, src)
	})
}
