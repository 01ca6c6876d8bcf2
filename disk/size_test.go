package disk

import (
	"os"
	"path/filepath"
	"testing"
)

// Size only looks: an existing disk file keeps its bytes and size until
// Open, and size 0 means the default for files.
func TestSizeLeavesTheFileAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, []byte("an older disk"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ asked, want int64 }{{0, DefaultFileSize}, {64 << 20, 64 << 20}} {
		got, err := Size(path, c.asked)
		if err != nil || got != c.want {
			t.Errorf("Size(%d) = %d, %v; want %d", c.asked, got, err, c.want)
		}
	}
	if data, _ := os.ReadFile(path); string(data) != "an older disk" {
		t.Errorf("Size changed the file: %q", data)
	}
	for _, bad := range []int64{-512, 1000} {
		if _, err := Size(path, bad); err == nil {
			t.Errorf("Size(%d) accepted", bad)
		}
	}
	if _, err := Size(t.TempDir(), 64<<20); err == nil {
		t.Error("Size accepted a directory")
	}
}
