package erofs_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"cfsboot/gen/dump"
	"cfsboot/gen/erofs"
	"cfsboot/internal/conformance"
)

// vectors loads the reference's conformance vectors, kept in ../shared
// beside the repository (required under CI=true).
func vectors(t *testing.T) []conformance.Vector {
	t.Helper()
	return conformance.ForTest(t)
}

func options(v conformance.Vector) erofs.Options {
	if v.Version < 0 {
		return erofs.DefaultOptions()
	}
	return erofs.Options{MinVersion: v.Version, MaxVersion: v.Version}
}

// TestConformanceVectors: every dump gives exactly the image bytes
// mkcomposefs 1.0.8 wrote; every should-fail dump is rejected; and reading
// the image back, dumping and rebuilding reproduces the same bytes.
func TestConformanceVectors(t *testing.T) {
	for _, v := range vectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			root, err := dump.Parse(bytes.NewReader(v.Dump), dump.Options{Strict: !v.Lenient})
			if v.ShouldFail {
				if err == nil {
					_, err = erofs.Build(root, erofs.DefaultOptions())
				}
				if err == nil {
					t.Fatal("accepted a dump the reference rejects")
				}
				t.Logf("rejected: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			img, err := erofs.Build(root, options(v))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(img)
			if got := hex.EncodeToString(sum[:]); got != v.SHA256 {
				t.Fatalf("image sha256 %s, mkcomposefs wrote %s", got, v.SHA256)
			}
			back, err := erofs.Read(bytes.NewReader(img), int64(len(img)))
			if err != nil {
				t.Fatalf("reading the image back: %v", err)
			}
			var text bytes.Buffer
			if err := dump.Write(&text, back); err != nil {
				t.Fatal(err)
			}
			again, err := dump.Parse(&text, dump.Options{Strict: true})
			if err != nil {
				t.Fatalf("parsing our own dump: %v", err)
			}
			img2, err := erofs.Build(again, options(v))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(img, img2) {
				t.Fatalf("image -> dump -> image changed the bytes (%d vs %d bytes)", len(img), len(img2))
			}
		})
	}
}
