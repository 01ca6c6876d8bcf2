package mount_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"cfsboot/mount"
)

func openDir(t *testing.T, dir string) int {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// TestMkdirBeneath: state directories are created below the state root;
// bootc's relative var link works, absolute and climbing links fail.
func TestMkdirBeneath(t *testing.T) {
	outside := t.TempDir()
	state := t.TempDir()
	os.MkdirAll(filepath.Join(state, "os/default/var"), 0o755)
	os.MkdirAll(filepath.Join(state, "deploy/abc"), 0o755)
	os.Symlink("../../os/default/var", filepath.Join(state, "deploy/abc/var"))
	os.Symlink(outside, filepath.Join(state, "absolute"))
	os.Symlink("../../"+filepath.Base(outside), filepath.Join(state, "deploy/climb"))
	os.WriteFile(filepath.Join(state, "file"), nil, 0o644)
	root := openDir(t, state)

	fd, err := mount.MkdirBeneath(root, "deploy/abc/etc/upper")
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := mount.FdPath(fd); p != filepath.Join(state, "deploy/abc/etc/upper") {
		t.Errorf("created %s", p)
	}
	unix.Close(fd)
	fd, err = mount.MkdirBeneath(root, "deploy/abc/var/lib")
	if err != nil {
		t.Fatalf("bootc's relative var link: %v", err)
	}
	if p, _ := mount.FdPath(fd); p != filepath.Join(state, "os/default/var/lib") {
		t.Errorf("through the var link: %s", p)
	}
	unix.Close(fd)
	for rel, want := range map[string]string{
		"absolute/x":     "leads out of the directory",
		"deploy/climb/x": "leads out of the directory",
		"file/x":         "expected a directory",
		"../" + "escape": "leads out of the directory",
		"deploy/../../x": "leads out of the directory",
	} {
		if _, err := mount.MkdirBeneath(root, rel); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", rel, err, want)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("created outside the state directory: %v", entries)
	}
	// A dangling link in the last component is not followed to create its target.
	os.Symlink(filepath.Join(outside, "made"), filepath.Join(state, "dangling"))
	if _, err := mount.MkdirBeneath(root, "dangling"); err == nil {
		t.Error("created through a dangling absolute link")
	}
	if _, err := os.Stat(filepath.Join(outside, "made")); err == nil {
		t.Error("a directory appeared outside the state directory")
	}
}

// TestUntrustedMountsAreNosuidNodev: the /etc overlay and the /var bind
// over state from the disk do not honour setuid bits or device nodes.
func TestUntrustedMountsAreNosuidNodev(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	for _, d := range []string{"lower", "upper", "work", "etc", "var", "varsrc"} {
		os.Mkdir(filepath.Join(base, d), 0o755)
	}
	ov := mount.Overlay{Lower: []string{filepath.Join(base, "lower")}, Upper: filepath.Join(base, "upper"), Work: filepath.Join(base, "work"), Untrusted: true}
	if err := ov.Mount(filepath.Join(base, "etc")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(filepath.Join(base, "etc"), unix.MNT_DETACH) })
	if err := mount.BindUntrusted(openDir(t, filepath.Join(base, "varsrc")), filepath.Join(base, "var")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(filepath.Join(base, "var"), unix.MNT_DETACH) })
	for _, d := range []string{"etc", "var"} {
		var st unix.Statfs_t
		if err := unix.Statfs(filepath.Join(base, d), &st); err != nil {
			t.Fatal(err)
		}
		if st.Flags&unix.ST_NOSUID == 0 || st.Flags&unix.ST_NODEV == 0 {
			t.Errorf("%s mounted with flags %#x, want nosuid,nodev", d, st.Flags)
		}
	}
	os.WriteFile(filepath.Join(base, "var/written"), []byte("x"), 0o644)
	if _, err := os.Stat(filepath.Join(base, "varsrc/written")); err != nil {
		t.Error("the bind does not show the bound directory")
	}
}
