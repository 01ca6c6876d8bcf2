package store_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"cfsboot/gen/erofs"
	"cfsboot/gen/source"
	"cfsboot/gen/store"
	"cfsboot/verity"
)

func TestRemoveImage(t *testing.T) {
	src, st, first := fill(t)
	// A second image sharing the large objects, named by two refs.
	if err := os.WriteFile(filepath.Join(src, "d"), []byte(strings.Repeat("only in the second image ", 400)), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := source.Dir(src, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	second, _, err := st.Commit(root, erofs.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	a, err := verity.ParseSum(first)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"two", "os/two"} {
		if err := st.SetRef(ref, second); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SetRef("one", a); err != nil {
		t.Fatal(err)
	}
	if err := st.RemoveImage(second); err == nil || !strings.Contains(err.Error(), "exclusive lock") {
		t.Fatalf("RemoveImage under the shared lock: %v", err)
	}
	st = reopen(t, st, store.Exclusive)
	images, err := st.Images()
	if err != nil || len(images) != 2 || !slices.Contains(images, a) || !slices.Contains(images, second) {
		t.Fatalf("Images = %v, %v; want %s and %s", images, err, a, second)
	}
	if err := st.RemoveImage(second); err != nil {
		t.Fatal(err)
	}
	if images, err := st.Images(); err != nil || len(images) != 1 || images[0] != a {
		t.Errorf("after removing %s: Images = %v, %v", second, images, err)
	}
	for _, ref := range []string{"two", "os/two"} {
		if _, err := os.Lstat(filepath.Join(st.Dir(), "images", "refs", ref)); !os.IsNotExist(err) {
			t.Errorf("ref %s to the removed image is still there (%v)", ref, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(st.Dir(), "images", "refs", "one")); err != nil {
		t.Errorf("ref to the other image: %v", err)
	}
	// Only the object of "d" is unreferenced now.
	removed, _, err := st.GC(false)
	if err != nil || len(removed) != 1 {
		t.Errorf("gc after RemoveImage removed %v, %v; want the one object only the removed image used", removed, err)
	}
	if problems, err := st.Fsck(); err != nil || len(problems) != 0 {
		t.Errorf("fsck: %v %v", problems, err)
	}
	if err := st.RemoveImage(second); err == nil {
		t.Error("removing a missing image succeeded")
	}
}
