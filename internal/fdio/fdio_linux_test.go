package fdio

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	f := File(fd)
	data := bytes.Repeat([]byte("0123456789"), 100000)
	if n, err := f.Write(data); n != len(data) || err != nil {
		t.Fatalf("write: %d, %v", n, err)
	}
	got := make([]byte, 20)
	if n, err := f.ReadAt(got, int64(len(data))-10); n != 10 || err != io.EOF || string(got[:n]) != "0123456789" {
		t.Errorf("ReadAt at the end: %d %v %q", n, err, got[:n])
	}
	if n, err := f.ReadAt(got, 5); n != 20 || err != nil || string(got) != "56789012345678901234" {
		t.Errorf("ReadAt: %d %v %q", n, err, got)
	}
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(all, data) {
		t.Errorf("Read: %d bytes, %v", len(all), err)
	}
	if want, _ := os.ReadFile(path); !bytes.Equal(want, data) {
		t.Error("file content differs from what was written")
	}
	if _, err := File(-1).Read(got); err == nil {
		t.Error("reading a closed descriptor did not fail")
	}
}
