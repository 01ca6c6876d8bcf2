package store_test

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"cfsboot/gen/erofs"
	"cfsboot/gen/source"
	"cfsboot/gen/store"
	"cfsboot/gen/store/storetest"
	"cfsboot/verity"
)

// makeTree writes files files of 1-40 KiB under dir; content depends on
// seed, and files whose index is below shared get the same content for
// every seed (overlapping trees).
func makeTree(t testing.TB, dir string, files, shared int, seed int64) {
	t.Helper()
	for i := 0; i < files; i++ {
		s := seed
		if i < shared {
			s = 0
		}
		rng := rand.New(rand.NewSource(s*100000 + int64(i)))
		data := make([]byte, 1024+rng.Intn(40<<10))
		rng.Read(data)
		p := filepath.Join(dir, fmt.Sprintf("d%d", i%7), fmt.Sprintf("f%d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// create commits src into the store at dir as a command would.
func create(dir, src string, walk bool) (string, error) {
	st, err := store.Open(dir)
	if err != nil {
		return "", err
	}
	defer st.Close()
	read := source.Dir
	if walk {
		read = source.Walk
	}
	root, err := read(src, source.Options{})
	if err != nil {
		return "", err
	}
	d, _, err := st.CommitTree(root, store.CommitOptions{Erofs: erofs.DefaultOptions(), Ref: "test/" + filepath.Base(src)})
	return d.String(), err
}

func TestGCDuringCreateIntoEmptyStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	if _, err := store.Open(dir); err != nil { // an empty store for gc to open
		t.Fatal(err)
	}
	stop := storetest.GCLoop(t, dir)
	for i := 0; i < 15; i++ {
		src := filepath.Join(t.TempDir(), fmt.Sprintf("src%d", i))
		makeTree(t, src, 60, 0, int64(i+1))
		if _, err := create(dir, src, true); err != nil {
			stop()
			t.Fatalf("create %d: %v", i, err)
		}
		storetest.FsckClean(t, dir)
	}
	if _, n := stop(); n != 0 {
		t.Errorf("gc removed %d objects: every object belonged to an image", n)
	}
}

// The objects of the tree are in the store but no image references them:
// a writer that reuses them must not lose them to a gc.
func TestGCDuringCreateOverUnreferencedObjects(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	src := filepath.Join(t.TempDir(), "src")
	makeTree(t, src, 60, 0, 1)
	if _, err := create(dir, src, false); err != nil {
		t.Fatal(err)
	}
	stop := storetest.GCLoop(t, dir)
	defer stop()
	for i := 0; i < 15; i++ {
		// Drop the image (as a removed deployment would): its objects
		// stay, unreferenced, for the next create to reuse.
		st, err := store.OpenExisting(dir, store.OpenOptions{Lock: store.Exclusive})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"images/refs/test/src"} {
			os.Remove(filepath.Join(dir, p))
		}
		imgs, _ := filepath.Glob(filepath.Join(dir, "images", "*"))
		for _, p := range imgs {
			if !strings.HasSuffix(p, "refs") {
				os.Remove(p)
			}
		}
		st.Close()
		if _, err := create(dir, src, i%2 == 0); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		storetest.FsckClean(t, dir)
	}
}

func TestConcurrentOverlappingCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	if _, err := store.Open(dir); err != nil {
		t.Fatal(err)
	}
	stop := storetest.GCLoop(t, dir)
	defer stop()
	for i := 0; i < 6; i++ {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for w := 0; w < 2; w++ {
			src := filepath.Join(t.TempDir(), fmt.Sprintf("src%d-%d", i, w))
			makeTree(t, src, 50, 30, int64(10*i+w+1))
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[w] = create(dir, src, w == 0)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		storetest.FsckClean(t, dir)
	}
}

func TestNotAStore(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	empty := filepath.Join(base, "empty")
	os.Mkdir(empty, 0o755)
	for path, want := range map[string]string{
		filepath.Join(base, "missing"): "no such file or directory",
		empty:                          "not a composefs object store",
		file:                           "not a directory",
	} {
		st, err := store.OpenExisting(path, store.OpenOptions{})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
			t.Errorf("OpenExisting(%s): %v, want an error naming it with %q", path, err, want)
		}
		if st != nil {
			t.Errorf("OpenExisting(%s) returned a store", path)
		}
	}
	// Open makes a store only where nothing else is.
	os.WriteFile(filepath.Join(empty, "notes"), []byte("mine"), 0o644)
	if _, err := store.Open(empty); err == nil || !strings.Contains(err.Error(), `"notes"`) {
		t.Errorf("Open of a non-empty directory: %v", err)
	}
	if _, err := store.Open(file); err == nil {
		t.Error("Open of a file succeeded")
	}
	fresh := filepath.Join(base, "fresh", "store")
	st, err := store.Open(fresh)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	// composefs-rs repositories are stores once meta.json exists.
	rs := filepath.Join(base, "rs")
	os.MkdirAll(filepath.Join(rs, "objects"), 0o755)
	os.WriteFile(filepath.Join(rs, "meta.json"), []byte(`{"version":1,"algorithm":"fsverity-sha256-12"}`), 0o644)
	for _, d := range []string{fresh, rs} {
		st, err := store.OpenExisting(d, store.OpenOptions{})
		if err != nil {
			t.Errorf("OpenExisting(%s): %v", d, err)
			continue
		}
		st.Close()
	}
	// Writing into it makes what composefs-rs makes on first use.
	st, err = store.Open(rs)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.AddImage([]byte("an image")); err != nil {
		t.Fatal(err)
	}
}

func TestChangedFileIsNeverCommitted(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(path string)
		want   string
	}{
		{"appended", func(p string) { appendTo(t, p, "more") }, "bytes when listed"},
		{"truncated", func(p string) { os.Truncate(p, 100) }, "bytes when listed"},
		{"rewritten", func(p string) {
			time.Sleep(10 * time.Millisecond) // a new mtime
			data, _ := os.ReadFile(p)
			data[0] ^= 1
			os.WriteFile(p, data, 0o644)
		}, "modified after it was listed"},
		{"replaced", func(p string) {
			time.Sleep(10 * time.Millisecond)
			data, _ := os.ReadFile(p)
			data[0] ^= 1
			os.WriteFile(p+".new", data, 0o644)
			os.Rename(p+".new", p)
		}, "modified after it was listed"},
	} {
		// Copied on the host's filesystem, reflinked on XFS.
		for _, fs := range []struct {
			name string
			base func(*testing.T) string
		}{{"copy", (*testing.T).TempDir}, {"reflink", mountXFS}} {
			t.Run(c.name+"/"+fs.name, func(t *testing.T) { changedFileIsNeverCommitted(t, fs.base(t), c.change, c.want) })
		}
	}
}

func changedFileIsNeverCommitted(t *testing.T, base string, change func(path string), want string) {
	dir := filepath.Join(base, "store")
	src := filepath.Join(base, "src")
	os.Mkdir(src, 0o755)
	big := filepath.Join(src, "big")
	os.WriteFile(big, make([]byte, 300<<10), 0o644)
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	root, err := source.Walk(src, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	change(big)
	_, _, err = st.CommitTree(root, store.CommitOptions{Erofs: erofs.DefaultOptions()})
	if !errors.Is(err, source.ErrChanged) || !strings.Contains(err.Error(), big) || !strings.Contains(err.Error(), want) {
		t.Fatalf("commit of a changed file: %v, want ErrChanged naming %s with %q", err, big, want)
	}
	if imgs, _ := os.ReadDir(filepath.Join(dir, "images")); len(imgs) != 0 {
		t.Errorf("an image was committed: %v", imgs)
	}
	for _, pattern := range []string{"objects/.tmp-*", "objects/*/.tmp-*"} {
		if tmps, _ := filepath.Glob(filepath.Join(dir, pattern)); len(tmps) != 0 {
			t.Errorf("temporary files left: %v", tmps)
		}
	}
	// With Retry the file is read again, as it is now.
	d, _, err := st.CommitTree(root, store.CommitOptions{Erofs: erofs.DefaultOptions(), Retry: true})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	storetest.FsckClean(t, dir)
	info, _ := os.Stat(big)
	if n := root.Lookup("big"); n.Size != uint64(info.Size()) {
		t.Errorf("image says %d bytes, the file has %d", n.Size, info.Size())
	}
	if _, err := os.Stat(filepath.Join(dir, "images", d.String())); err != nil {
		t.Error(err)
	}
}

func sorted(s []string) []string { sort.Strings(s); return s }

func appendTo(t *testing.T, path, s string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(s)
	f.Close()
}

func TestRefsAndTemporaries(t *testing.T) {
	_, st, img := fill(t)
	dir := st.Dir()
	d, err := verity.ParseSum(img)
	if err != nil {
		t.Fatal(err)
	}
	if err = st.SetRef("os/stable", d); err != nil {
		t.Fatal(err)
	}
	target, err := os.Readlink(filepath.Join(dir, "images/refs/os/stable"))
	if err != nil || target != "../../"+img {
		t.Fatalf("ref: %q %v", target, err)
	}
	for _, bad := range []string{"", "/abs", "a/../b", "a//b", ".tmp-x"} {
		if err := st.SetRef(bad, d); err == nil {
			t.Errorf("SetRef(%q) accepted", bad)
		}
	}
	// A writer's temporary files (a copy's in objects/, a reflink's beside
	// its object's name) are nobody's garbage under a shared lock.
	tmps := []string{
		filepath.Join(dir, "objects", ".tmp-object-abandoned"),
		filepath.Join(dir, "objects", "ab", ".tmp-object-reflinked"),
	}
	os.Mkdir(filepath.Dir(tmps[1]), 0o755)
	for _, tmp := range tmps {
		os.WriteFile(tmp, []byte("half"), 0o644)
	}
	if problems, err := st.Fsck(); err != nil || len(problems) != 0 {
		t.Fatalf("shared fsck: %v %v", problems, err)
	}
	if _, _, err := st.GC(false); err == nil {
		t.Fatal("gc ran under a shared lock")
	}
	ex := reopen(t, st, store.Exclusive)
	problems, err := ex.Fsck()
	if err != nil || len(problems) != 2 || problems[0].Path != tmps[0] || problems[1].Path != tmps[1] || !problems[0].Garbage || !problems[1].Garbage {
		t.Fatalf("exclusive fsck: %v %v", problems, err)
	}
	removed, _, err := ex.GC(false)
	if err != nil || fmt.Sprint(removed) != fmt.Sprint(tmps) {
		t.Fatalf("gc: %v %v", removed, err)
	}
}

func TestRepair(t *testing.T) {
	_, st, img := fill(t)
	objs := objects(t, st)
	data, _ := os.ReadFile(objs[0])
	data[0] ^= 1
	os.WriteFile(objs[0], data, 0o644)
	misnamed := filepath.Join(filepath.Dir(objs[0]), "nothex")
	os.WriteFile(misnamed, nil, 0o644)
	tmp := filepath.Join(st.Dir(), "objects", ".tmp-image-x")
	os.WriteFile(tmp, nil, 0o644)
	if _, _, err := st.Repair(); err == nil {
		t.Fatal("repair under a shared lock")
	}
	ex := reopen(t, st, store.Exclusive)
	removed, remaining, err := ex.Repair()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(removed)
	if want := []string{tmp, objs[0], misnamed}; fmt.Sprint(removed) != fmt.Sprint(sorted(want)) {
		t.Errorf("removed %v", removed)
	}
	imgPath := filepath.Join(st.Dir(), "images", img)
	if len(remaining) != 1 || remaining[0].Path != imgPath || !strings.Contains(remaining[0].Reason, "make this image again") {
		t.Errorf("remaining %v", remaining)
	}
	problems, _ := ex.Fsck()
	if len(problems) != 1 || !strings.Contains(problems[0].Reason, "missing (referenced by "+imgPath) {
		t.Errorf("after repair: %v", problems)
	}
}
