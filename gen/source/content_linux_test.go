package source

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cfsboot/verity"
)

// changeOnWrite changes the file on the first write of the copy, that is
// while CopyContent is reading it.
type changeOnWrite struct {
	change func()
	done   bool
	h      *verity.Hasher
}

func (c *changeOnWrite) Write(p []byte) (int, error) {
	if !c.done {
		c.done = true
		c.change()
	}
	return c.h.Write(p)
}

func TestCopyContentDetectsChangesDuringTheRead(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(path string)
		want   string
	}{
		{"appended", func(p string) {
			f, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			f.Write(make([]byte, 1<<20))
			f.Close()
		}, "grew from"},
		{"truncated", func(p string) { os.Truncate(p, 1000) }, "truncated from"},
		{"rewritten in place", func(p string) {
			time.Sleep(5 * time.Millisecond) // ctime granularity
			f, _ := os.OpenFile(p, os.O_WRONLY, 0)
			f.WriteAt([]byte("x"), 2<<20)
			f.Close()
		}, "change time moved"},
		{"replaced", func(p string) {
			os.WriteFile(p+".new", []byte("other"), 0o644)
			os.Rename(p+".new", p)
		}, "replaced by another file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			os.WriteFile(path, make([]byte, 3<<20), 0o644)
			root, err := Walk(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			n := root.Lookup("f")
			if n.Digest != nil || n.Payload != "" {
				t.Fatalf("Walk read a large file: %+v", n)
			}
			w := &changeOnWrite{change: func() { c.change(path) }, h: verity.NewHasher()}
			err = CopyContent(n, w)
			if !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrChanged naming %s with %q", err, path, c.want)
			}
			// Refresh describes the file as it is now, and a second
			// read succeeds.
			if err := Refresh(n); err != nil {
				t.Fatal(err)
			}
			st, _ := os.Stat(path)
			if n.Size != uint64(st.Size()) {
				t.Fatalf("refreshed size %d, file has %d", n.Size, st.Size())
			}
			if n.Size <= InlineMax {
				if string(n.Content) != "other" {
					t.Fatalf("small file not inlined: %+v", n)
				}
				return
			}
			h := verity.NewHasher()
			if err := CopyContent(n, h); err != nil {
				t.Fatal(err)
			}
			want, _ := verity.ComputeFile(path)
			if h.Digest() != want {
				t.Error("digest of the second read differs from the file's")
			}
		})
	}
}

func TestCopyContentMatchesDir(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a"), []byte(strings.Repeat("abc", 50000)), 0o644)
	os.WriteFile(filepath.Join(dir, "small"), []byte("tiny"), 0o644)
	full, err := Dir(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	walked, err := Walk(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s := walked.Lookup("small"); string(s.Content) != "tiny" || *s.Digest != *full.Lookup("small").Digest {
		t.Errorf("Walk did not inline the small file: %+v", s)
	}
	h := verity.NewHasher()
	if err := CopyContent(walked.Lookup("a"), io.Writer(h)); err != nil {
		t.Fatal(err)
	}
	if h.Digest() != *full.Lookup("a").Digest {
		t.Error("CopyContent's bytes hash differently from Dir's digest")
	}
}
