package erofs_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"cfsboot/gen/dump"
	"cfsboot/gen/erofs"
)

func sampleImage(t testing.TB) []byte {
	root, err := dump.Parse(strings.NewReader(`/ 0 40755 2 0 0 0 1.0 - - - user.a=b
/f 5 100644 1 0 0 0 1.0 - hello - user.a=b
/x 9000 100644 1 0 0 0 1.0 ab/cdef - 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
/l 1 120777 1 0 0 0 1.0 f - -
`), dump.Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	img, err := erofs.Build(root, erofs.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestReadTruncatedAndGarbage: every proper prefix of a valid image is an
// error that says it is cut short (shorter than a block, an area or a
// range past its end), never a panic and never a tree; garbage is not a
// composefs image; flipped bytes never panic.
func TestReadTruncatedAndGarbage(t *testing.T) {
	img := sampleImage(t)
	for n := 0; n < len(img); n++ {
		root, err := erofs.Read(bytes.NewReader(img[:n]), int64(n))
		switch {
		case err == nil:
			t.Fatalf("image cut at %d of %d bytes read as a tree: %v", n, len(img), root)
		case n < 4096:
			if !errors.Is(err, erofs.ErrNotComposefs) || err.Error() != fmt.Sprintf("not a composefs image: %d bytes is shorter than one block", n) {
				t.Fatalf("image cut at %d bytes: %v", n, err)
			}
		case !strings.Contains(err.Error(), "starts past the end") && !strings.Contains(err.Error(), fmt.Sprintf("is outside the %d-byte image", n)):
			t.Fatalf("image cut at %d bytes: %v, want it to say what lies past the end", n, err)
		}
	}
	junk := bytes.Repeat([]byte{0xab}, 8192)
	if _, err := erofs.Read(bytes.NewReader(junk), int64(len(junk))); !errors.Is(err, erofs.ErrNotComposefs) || !strings.Contains(err.Error(), "bad composefs magic 0xabababab") {
		t.Errorf("junk: %v", err)
	}
	// A flipped byte may still be a valid image (a changed mtime or
	// content); only panics are wrong here.
	for i := 1024; i < len(img); i += 13 {
		bad := append([]byte{}, img...)
		bad[i] ^= 0xff
		erofs.Read(bytes.NewReader(bad), int64(len(bad)))
	}
}

func FuzzReadImage(f *testing.F) {
	f.Add(sampleImage(f))
	for _, format := range erofs.Formats {
		img, err := erofs.Build(richTree(f), format.Options())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(img)
	}
	f.Fuzz(func(t *testing.T, img []byte) {
		erofs.Read(bytes.NewReader(img), int64(len(img)))
	})
}
