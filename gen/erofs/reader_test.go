package erofs_test

import (
	"bytes"
	"errors"
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

// TestReadTruncatedAndGarbage: every prefix of a valid image and a few
// corruptions give errors, never panics.
func TestReadTruncatedAndGarbage(t *testing.T) {
	img := sampleImage(t)
	for n := 0; n < len(img); n += 97 {
		erofs.Read(bytes.NewReader(img[:n]), int64(n))
	}
	if _, err := erofs.Read(bytes.NewReader(img[:100]), 100); !errors.Is(err, erofs.ErrNotComposefs) {
		t.Errorf("short image: %v", err)
	}
	junk := bytes.Repeat([]byte{0xab}, 8192)
	if _, err := erofs.Read(bytes.NewReader(junk), int64(len(junk))); !errors.Is(err, erofs.ErrNotComposefs) {
		t.Errorf("junk: %v", err)
	}
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
