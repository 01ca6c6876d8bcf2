package initramfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestOpenImage: the image's name on an untrusted disk may be anything;
// only a regular file is opened, through symlinks only while they stay in
// the store (composefs-rs links images/<hex> to ../objects/XX/<rest>), and
// nothing else is opened at all (a FIFO would block the open forever, a
// device node would open the device). Only a missing name is "absent".
func TestOpenImage(t *testing.T) {
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "image"), []byte("erofs image"), 0o644)
	store := filepath.Join(t.TempDir(), "composefs")
	images := filepath.Join(store, "images")
	os.MkdirAll(images, 0o755)
	os.MkdirAll(filepath.Join(store, "objects", "ab"), 0o755)
	os.WriteFile(filepath.Join(images, "image"), []byte("erofs image"), 0o644)
	os.WriteFile(filepath.Join(store, "objects", "ab", "cdef"), []byte("erofs image"), 0o644)
	os.Symlink("../objects/ab/cdef", filepath.Join(images, "link"))
	os.Symlink("../objects/ab/missing", filepath.Join(images, "dangling"))
	os.Symlink(filepath.Join(outside, "image"), filepath.Join(images, "absolute"))
	os.Symlink("../../../"+filepath.Base(outside)+"/image", filepath.Join(images, "climbing"))
	os.Symlink("../objects/ab", filepath.Join(images, "linkdir"))
	os.Mkdir(filepath.Join(images, "dir"), 0o755)
	if err := unix.Mkfifo(filepath.Join(images, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"image":    "",
		"link":     "",
		"dangling": "found a symlink to a file that does not exist",
		"absolute": "found a symlink leading out of the store",
		"climbing": "found a symlink leading out of the store",
		"linkdir":  "found a directory, not a regular file",
		"dir":      "found a directory, not a regular file",
		"fifo":     "found a FIFO, not a regular file",
		"missing":  "images/missing: not in the store",
	}
	if os.Geteuid() == 0 {
		// A device node with the image's name: the TTY would become the
		// init's controlling terminal, a disk would be read as the image.
		if err := unix.Mknod(filepath.Join(images, "chr"), unix.S_IFCHR|0o600, int(unix.Mkdev(5, 0))); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mknod(filepath.Join(images, "blk"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0))); err != nil {
			t.Fatal(err)
		}
		cases["chr"] = "found a character device, not a regular file"
		cases["blk"] = "found a block device, not a regular file"
	} else {
		t.Log("not root: device nodes not tested")
	}
	storeFd, err := unix.Open(store, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(storeFd)
	for name, want := range cases {
		t.Run(name, func(t *testing.T) {
			type result struct {
				fd  int
				err error
			}
			done := make(chan result, 1)
			go func() { fd, err := openImageIn(storeFd, name); done <- result{fd, err} }()
			var r result
			select {
			case r = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("open blocked")
			}
			if want == "" {
				if r.err != nil {
					t.Fatal(r.err)
				}
				defer unix.Close(r.fd)
				buf := make([]byte, 32)
				n, _ := unix.Read(r.fd, buf)
				if string(buf[:n]) != "erofs image" {
					t.Fatalf("read %q", buf[:n])
				}
				return
			}
			if r.err == nil || !strings.Contains(r.err.Error(), want) {
				t.Fatalf("%v, want %q", r.err, want)
			}
			if absent := errors.Is(r.err, ErrImageAbsent); absent != (name == "missing") {
				t.Fatalf("%v: absent %v", r.err, absent)
			}
		})
	}
}
