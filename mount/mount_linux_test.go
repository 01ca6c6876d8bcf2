package mount_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	goerofs "github.com/erofs/go-erofs"
	"golang.org/x/sys/unix"

	"cfsboot/gen/erofs"
	"cfsboot/gen/source"
	"cfsboot/gen/store"
	"cfsboot/mount"
	"cfsboot/verity"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts EROFS and overlayfs through the kernel")
	}
}

// sourceTree makes a tree with the file kinds a root filesystem has.
func sourceTree(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "etc/sub"), 0o755))
	must(os.MkdirAll(filepath.Join(src, "usr/bin"), 0o755))
	must(os.WriteFile(filepath.Join(src, "etc/hostname"), []byte("cfsboot\n"), 0o644))
	must(os.WriteFile(filepath.Join(src, "etc/sub/empty"), nil, 0o600))
	big := bytes.Repeat([]byte("0123456789abcdef"), 40000)
	must(os.WriteFile(filepath.Join(src, "usr/bin/tool"), big, 0o755))
	must(os.WriteFile(filepath.Join(src, "usr/bin/tool-copy"), big, 0o755))
	must(os.WriteFile(filepath.Join(src, "usr/bin/medium"), bytes.Repeat([]byte("m"), 3000), 0o644))
	must(os.Symlink("../etc/hostname", filepath.Join(src, "usr/hostname-link")))
	must(unix.Mkfifo(filepath.Join(src, "fifo"), 0o640))
	must(unix.Mknod(filepath.Join(src, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(os.Lchown(filepath.Join(src, "etc/hostname"), 1234, 5678))
	must(unix.Setxattr(filepath.Join(src, "etc/hostname"), "user.origin", []byte("test"), 0))
	return src
}

// buildImage writes the image of src into a store and returns the store
// and the image path.
func buildImage(t *testing.T, src string) (*store.Store, string) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	root, err := source.Dir(src, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, _, err := st.Commit(root, erofs.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	return st, st.ImagePath(d)
}

// mountComposefs builds src's image into a store and mounts it as a
// composefs root with the given verity mode; everything is unmounted when
// the test ends.
func mountComposefs(t *testing.T, src, verityMode string) (string, error) {
	t.Helper()
	st, imgPath := buildImage(t, src)
	img, err := os.Open(imgPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	lower, root := t.TempDir(), t.TempDir()
	if err := mount.EROFS(int(img.Fd()), lower); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(lower, unix.MNT_DETACH) })
	ov := mount.Overlay{Lower: []string{lower}, Data: []string{filepath.Join(st.Dir(), "objects")}, Composefs: true, Verity: verityMode}
	if err := ov.Mount(root); err != nil {
		return "", err
	}
	t.Cleanup(func() { unix.Unmount(root, unix.MNT_DETACH) })
	return root, nil
}

type entry struct {
	mode       fs.FileMode
	uid, gid   uint32
	size       int64
	rdev       uint64
	content    string
	linkTarget string
	xattrs     string
}

func describe(t *testing.T, root string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		st := fi.Sys().(*syscall.Stat_t)
		e := entry{mode: fi.Mode(), uid: st.Uid, gid: st.Gid, rdev: st.Rdev}
		switch {
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.size, e.content = fi.Size(), string(data)
		case fi.Mode()&fs.ModeSymlink != 0:
			e.linkTarget, _ = os.Readlink(p)
		}
		var names []string
		buf := make([]byte, 4096)
		if n, err := unix.Llistxattr(p, buf); err == nil {
			for _, k := range strings.Split(string(buf[:n]), "\x00") {
				if strings.HasPrefix(k, "user.") {
					v := make([]byte, 256)
					vn, _ := unix.Lgetxattr(p, k, v)
					names = append(names, k+"="+string(v[:max(vn, 0)]))
				}
			}
		}
		sort.Strings(names)
		e.xattrs = strings.Join(names, ",")
		if rel != "." {
			out[rel] = e
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMountedTreeMatchesSource mounts the image through the kernel's EROFS
// driver and overlayfs over the object store (verity=off: this host kernel
// has no fs-verity) and compares every file with the source tree.
func TestMountedTreeMatchesSource(t *testing.T) {
	requireRoot(t)
	src := sourceTree(t)
	root, err := mountComposefs(t, src, mount.VerityOff)
	if err != nil {
		t.Fatal(err)
	}
	want, got := describe(t, src), describe(t, root)
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: missing in the mounted tree", name)
			continue
		}
		if w.mode.IsDir() {
			w.size, g.size = 0, 0
		}
		if g != w {
			t.Errorf("%s: mounted %+v\nsource %+v", name, g, w)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: in the mounted tree but not the source", name)
		}
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(root, &sfs); err != nil || sfs.Type != unix.OVERLAYFS_SUPER_MAGIC {
		t.Errorf("root is not overlayfs: %#x %v", sfs.Type, err)
	}
	if err := os.WriteFile(filepath.Join(root, "new"), nil, 0o644); err == nil {
		t.Error("composefs root is writable")
	}
}

// TestRequireVerityRefusesUnprotectedObjects: verity=require on a host
// without fs-verity must refuse to serve files whose objects it cannot
// check, rather than silently not checking: overlayfs mounts, serves the
// inline files, and fails the read of an external file with EIO, logging
// that this very object has no fs-verity digest.
func TestRequireVerityRefusesUnprotectedObjects(t *testing.T) {
	requireRoot(t)
	klog := watchKernelLog(t)
	src := sourceTree(t)
	root, err := mountComposefs(t, src, mount.VerityRequire)
	if err != nil {
		t.Fatalf("verity=require mount: %v", err)
	}
	if data, err := os.ReadFile(filepath.Join(root, "etc/hostname")); err != nil || string(data) != "cfsboot\n" {
		t.Errorf("inline file under verity=require: %q %v", data, err)
	}
	tool, err := os.ReadFile(filepath.Join(src, "usr/bin/tool"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = os.ReadFile(filepath.Join(root, "usr/bin/tool"))
	if !errors.Is(err, unix.EIO) {
		t.Fatalf("read an external file whose object has no fs-verity under verity=require: %v, want EIO", err)
	}
	// The object file is objects/XX/<the rest of its digest>.
	object := verity.ComputeBytes(tool).String()[2:]
	klog.expect(t, "overlayfs: lower file '"+object+"' has no fs-verity digest")
}

func TestImagesPassFsckErofsAndGoErofs(t *testing.T) {
	_, imgPath := buildImage(t, sourceTree(t))
	if fsck, err := exec.LookPath("fsck.erofs"); err == nil {
		if out, err := exec.Command(fsck, imgPath).CombinedOutput(); err != nil {
			t.Errorf("fsck.erofs: %v\n%s", err, out)
		}
	} else {
		t.Log("fsck.erofs (erofs-utils) not installed; skipping that oracle")
	}
	f, err := os.Open(imgPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	efs, err := goerofs.EroFS(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := fs.ReadFile(efs, "etc/hostname")
	if err != nil || string(data) != "cfsboot\n" {
		t.Errorf("go-erofs etc/hostname: %q %v", data, err)
	}
	var names []string
	fs.WalkDir(efs, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			names = append(names, p)
		}
		return nil
	})
	for _, want := range []string{"usr/bin/tool", "usr/hostname-link", "fifo", "null", "etc/sub/empty"} {
		if !contains(names, want) {
			t.Errorf("go-erofs does not list %s (has %v)", want, names)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestMountErrorsAreExplained: a mount failure names the filesystem, the
// step and the errno, and carries the kernel's own words when it logs them
// on the filesystem context.
func TestMountErrorsAreExplained(t *testing.T) {
	requireRoot(t)
	klog := watchKernelLog(t)
	f, err := os.CreateTemp(t.TempDir(), "notanimage")
	if err != nil {
		t.Fatal(err)
	}
	f.Write(make([]byte, 8192))
	defer f.Close()
	err = mount.EROFS(int(f.Fd()), t.TempDir())
	if !errors.Is(err, unix.EINVAL) || !strings.HasPrefix(err.Error(), "erofs create: ") {
		t.Fatalf("mounting 8 KiB of zeros as EROFS: %v, want EINVAL when the superblock is created", err)
	}
	// EROFS says why in the kernel log, not on the context.
	klog.expect(t, "cannot find valid erofs superblock")

	err = mount.Overlay{Lower: []string{t.TempDir()}, Verity: "bogus"}.Mount(t.TempDir())
	if !errors.Is(err, unix.EINVAL) || err.Error() != "overlay verity=bogus: invalid argument (kernel: e overlay: Bad value for 'verity')" {
		t.Errorf("overlay with verity=bogus: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	err = mount.Overlay{Lower: []string{missing}}.Mount(t.TempDir())
	if !errors.Is(err, unix.ENOENT) || !strings.HasPrefix(err.Error(), "overlay lowerdir+="+missing+": ") {
		t.Errorf("overlay over a missing lower directory: %v", err)
	}
}

// kernelLog reads the kernel's log records written after it was opened.
type kernelLog struct{ fd int }

// watchKernelLog opens /dev/kmsg at its end; nil (checks are skipped, with
// a note) where the log cannot be read, as in some containers.
func watchKernelLog(t *testing.T) *kernelLog {
	t.Helper()
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Logf("kernel log unreadable (%v): the kernel's messages are not checked", err)
		return nil
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.Seek(fd, 0, unix.SEEK_END); err != nil {
		t.Fatal(err)
	}
	return &kernelLog{fd: fd}
}

// expect fails the test unless a record since the last call contains want.
func (k *kernelLog) expect(t *testing.T, want string) {
	t.Helper()
	if k == nil {
		return
	}
	var seen []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.Read(k.fd, buf)
		if errors.Is(err, unix.EPIPE) { // records overwritten meanwhile
			continue
		}
		if err != nil || n <= 0 {
			break
		}
		// "prio,seq,usec,flags;message\n" plus continuation lines.
		if _, msg, ok := strings.Cut(strings.SplitN(string(buf[:n]), "\n", 2)[0], ";"); ok {
			if strings.Contains(msg, want) {
				return
			}
			seen = append(seen, msg)
		}
	}
	t.Errorf("kernel log lacks %q; it said:\n%s", want, strings.Join(seen, "\n"))
}
