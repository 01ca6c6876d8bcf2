package initramfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestOpenRegular: the image's name on an untrusted disk may be anything;
// only a regular file is opened, and nothing else is opened at all (a FIFO
// would block the open forever, a device node would open the device).
func TestOpenRegular(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "image")
	os.WriteFile(img, []byte("erofs image"), 0o644)
	os.Symlink(img, filepath.Join(dir, "link"))
	os.Mkdir(filepath.Join(dir, "dir"), 0o755)
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"image":   "",
		"link":    "found a symlink, which is not followed",
		"dir":     "found a directory, not a regular file",
		"fifo":    "found a FIFO, not a regular file",
		"missing": "found no such file",
	}
	if os.Geteuid() == 0 {
		// A device node with the image's name: the TTY would become the
		// init's controlling terminal, a disk would be read as the image.
		if err := unix.Mknod(filepath.Join(dir, "chr"), unix.S_IFCHR|0o600, int(unix.Mkdev(5, 0))); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mknod(filepath.Join(dir, "blk"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0))); err != nil {
			t.Fatal(err)
		}
		cases["chr"] = "found a character device, not a regular file"
		cases["blk"] = "found a block device, not a regular file"
	} else {
		t.Log("not root: device nodes not tested")
	}
	for name, want := range cases {
		t.Run(name, func(t *testing.T) {
			type result struct {
				fd  int
				err error
			}
			done := make(chan result, 1)
			go func() { fd, err := openRegular(filepath.Join(dir, name)); done <- result{fd, err} }()
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
		})
	}
}
