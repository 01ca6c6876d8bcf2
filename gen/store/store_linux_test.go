package store_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cfsboot/gen/erofs"
	"cfsboot/gen/source"
	"cfsboot/gen/store"
	"cfsboot/gen/tree"
	"cfsboot/verity"
)

// fill makes a source tree with two identical large files and one other.
func fill(t *testing.T) (src string, st *store.Store, imgDigest string) {
	t.Helper()
	src = t.TempDir()
	big := make([]byte, 200<<10)
	for i := range big {
		big[i] = byte(i % 251)
	}
	for name, data := range map[string][]byte{"a": big, "b": big, "c": []byte(strings.Repeat("c", 100)), "tiny": []byte("t")} {
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st, err := store.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	root, err := source.Dir(src, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := st.Commit(root, erofs.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	return src, st, d.String()
}

func objects(t *testing.T, st *store.Store) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(st.Dir(), "objects"), func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			out = append(out, p)
		}
		return err
	})
	return out
}

func TestAddTreeDedupsAndLeavesNoTemporaries(t *testing.T) {
	_, st, img := fill(t)
	objs := objects(t, st)
	// a and b share one object; c is external; tiny is inline.
	if len(objs) != 2 {
		t.Fatalf("objects: %v, want 2", objs)
	}
	for _, o := range objs {
		if strings.Contains(filepath.Base(o), ".tmp") {
			t.Errorf("temporary file left: %s", o)
		}
	}
	if _, err := os.Stat(filepath.Join(st.Dir(), "images", img)); err != nil {
		t.Fatal(err)
	}
	if st.Protected() {
		t.Log("store filesystem supports fs-verity")
	} else if err := st.RequireProtected(); err == nil || !strings.Contains(err.Error(), "not protected") {
		t.Errorf("RequireProtected on an unprotected store: %v", err)
	}
	if problems, err := st.Fsck(); err != nil || len(problems) != 0 {
		t.Fatalf("fsck of a good store: %v %v", problems, err)
	}
}

func TestFsckFindsDamage(t *testing.T) {
	_, st, img := fill(t)
	objs := objects(t, st)
	// Flip a byte in one object, delete the other, misname the image.
	data, err := os.ReadFile(objs[0])
	if err != nil {
		t.Fatal(err)
	}
	data[10] ^= 1
	if err := os.WriteFile(objs[0], data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(objs[1]); err != nil {
		t.Fatal(err)
	}
	imgPath := filepath.Join(st.Dir(), "images", img)
	wrong := filepath.Join(st.Dir(), "images", strings.Repeat("0", 64))
	raw, _ := os.ReadFile(imgPath)
	if err := os.WriteFile(wrong, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	problems, err := st.Fsck()
	if err != nil {
		t.Fatal(err)
	}
	text := ""
	for _, p := range problems {
		text += p.String() + "\n"
	}
	for _, want := range []string{
		objs[0] + ": content has fs-verity digest",
		objs[1] + ": missing (referenced by ",
		filepath.Join(st.Dir(), "images", img) + ")",
		wrong + ": content has fs-verity digest " + img + ", not its name",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("fsck report lacks %q:\n%s", want, text)
		}
	}
}

func TestGCKeepsReferencedObjects(t *testing.T) {
	_, st, _ := fill(t)
	orphan := addOrphan(t, st, "orphan content that no image uses")
	st = reopen(t, st, store.Exclusive)
	removed, _, err := st.GC(true)
	if err != nil || len(removed) != 1 || removed[0] != st.ObjectPath(orphan) {
		t.Fatalf("dry run: %v %v", removed, err)
	}
	if _, err := os.Stat(st.ObjectPath(orphan)); err != nil {
		t.Fatal("dry run removed the object")
	}
	if removed, _, err = st.GC(false); err != nil || len(removed) != 1 {
		t.Fatalf("gc: %v %v", removed, err)
	}
	if _, err := os.Stat(st.ObjectPath(orphan)); !os.IsNotExist(err) {
		t.Fatal("orphan still there")
	}
	if problems, err := st.Fsck(); err != nil || len(problems) != 0 {
		t.Fatalf("gc removed something referenced: %v %v", problems, err)
	}
	if tree.ObjectPathOf(orphan) != filepath.Base(filepath.Dir(st.ObjectPath(orphan)))+"/"+filepath.Base(st.ObjectPath(orphan)) {
		t.Error("ObjectPath layout")
	}
}

// addOrphan stores an object no image references.
func addOrphan(t *testing.T, st *store.Store, content string) verity.Sum {
	t.Helper()
	b := st.NewBatch()
	d, err := b.AddObject(func(w io.Writer) error { _, err := io.WriteString(w, content); return err })
	if err == nil {
		err = b.Flush()
	}
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// reopen closes st and opens its directory again with the given lock.
func reopen(t *testing.T, st *store.Store, lock store.Lock) *store.Store {
	t.Helper()
	st.Close()
	st, err := store.OpenExisting(st.Dir(), store.OpenOptions{Lock: lock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// An image whose file redirects to another object than the digest it
// expects is reported, naming the image.
func TestFsckFindsMisdirectedFile(t *testing.T) {
	_, st, _ := fill(t)
	stored, err := verity.ParseDigest(strings.ReplaceAll(strings.TrimPrefix(objects(t, st)[0], filepath.Join(st.Dir(), "objects")+"/"), "/", ""))
	if err != nil {
		t.Fatal(err)
	}
	other := verity.ComputeBytes([]byte("something else"))
	root := &tree.Node{Mode: tree.SIFDIR | 0o755}
	f := &tree.Node{Name: "f", Mode: tree.SIFREG | 0o644, Nlink: 1, Size: 100}
	f.SetFileDigest(other.Sum())
	f.Payload = tree.ObjectPath(stored) // the redirect names the stored object
	if err := root.AddChild(f); err != nil {
		t.Fatal(err)
	}
	img, err := erofs.Build(root, erofs.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	d, err := st.AddImage(img)
	if err != nil {
		t.Fatal(err)
	}
	problems, err := st.Fsck()
	if err != nil {
		t.Fatal(err)
	}
	if !hasProblem(problems, st.ImagePath(d), "a file redirects to "+tree.ObjectPath(stored)+" but expects digest "+other.String()) {
		t.Errorf("fsck did not report the misdirected file: %v", problems)
	}
}
