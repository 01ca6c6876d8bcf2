package erofs_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"cfsboot/gen/dump"
	"cfsboot/gen/erofs"
)

// vectorsDir holds the reference's conformance vectors (containers/composefs
// tests/assets at v1.0.8), kept in ../shared beside the repository.
const vectorsDir = "../../../shared/composefs-tests"

// lenient are the vectors the reference parses without CFS_PARSE_STRICT.
var lenient = map[string]bool{
	"no-newline.dump":                      true,
	"longlink.dump":                        true,
	"honggfuzz-longlink-unterminated.dump": true,
}

func vectors(t *testing.T) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(vectorsDir, "*.dump*"))
	if err != nil || len(names) == 0 {
		t.Skipf("no conformance vectors in %s (the shared/ directory must sit beside the repository)", vectorsDir)
	}
	var out []string
	for _, n := range names {
		if strings.HasSuffix(n, ".dump") || strings.HasSuffix(n, ".dump.gz") {
			out = append(out, n)
		}
	}
	return out
}

func readDump(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return data
}

func optionsFor(t *testing.T, path string) erofs.Options {
	t.Helper()
	v, err := os.ReadFile(strings.TrimSuffix(path, ".gz") + ".version")
	if os.IsNotExist(err) {
		return erofs.DefaultOptions()
	}
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(v)))
	if err != nil {
		t.Fatal(err)
	}
	return erofs.Options{MinVersion: n, MaxVersion: n}
}

// TestConformanceVectors: every dump gives exactly the image bytes
// mkcomposefs 1.0.8 wrote; every should-fail dump is rejected; and reading
// the image back, dumping and rebuilding reproduces the same bytes.
func TestConformanceVectors(t *testing.T) {
	for _, path := range vectors(t) {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			input := readDump(t, path)
			opts := dump.Options{Strict: !lenient[strings.TrimSuffix(name, ".gz")]}
			root, err := dump.Parse(bytes.NewReader(input), opts)
			if strings.HasPrefix(name, "should-fail-") {
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
			wopts := optionsFor(t, path)
			img, err := erofs.Build(root, wopts)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(path + ".sha256")
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(img)
			if got := hex.EncodeToString(sum[:]); got != strings.Fields(string(want))[0] {
				t.Fatalf("image sha256 %s, mkcomposefs wrote %s", got, strings.TrimSpace(string(want)))
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
			img2, err := erofs.Build(again, wopts)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(img, img2) {
				t.Fatalf("image -> dump -> image changed the bytes (%d vs %d bytes)", len(img), len(img2))
			}
		})
	}
}
