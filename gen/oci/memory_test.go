package oci

import (
	"archive/tar"
	"crypto/sha256"
	"fmt"
	"io"
	"runtime"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// streamedLayer is an uncompressed layer generated on every read: files
// regular files of size bytes each. Nothing holds it in memory.
type streamedLayer struct {
	files  int
	size   int64
	digest v1.Hash
}

func newStreamedLayer(t testing.TB, files int, size int64) *streamedLayer {
	l := &streamedLayer{files: files, size: size}
	h := sha256.New()
	if _, err := io.Copy(h, l.open()); err != nil {
		t.Fatal(err)
	}
	l.digest = v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}
	return l
}

func (l *streamedLayer) open() io.ReadCloser {
	r, w := io.Pipe()
	go func() {
		tw := tar.NewWriter(w)
		buf := make([]byte, 64<<10)
		for f := 0; f < l.files; f++ {
			name := fmt.Sprintf("d%03d/f%05d", f%100, f)
			if f < 100 {
				if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%03d/", f), Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
					w.CloseWithError(err)
					return
				}
			}
			if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: l.size}); err != nil {
				w.CloseWithError(err)
				return
			}
			for i := range buf {
				buf[i] = byte(i*7 + f) // a different content per file
			}
			for left := l.size; left > 0; left -= int64(len(buf)) {
				if _, err := tw.Write(buf[:min(left, int64(len(buf)))]); err != nil {
					w.CloseWithError(err)
					return
				}
			}
		}
		w.CloseWithError(tw.Close())
	}()
	return r
}

func (l *streamedLayer) Digest() (v1.Hash, error)             { return l.digest, nil }
func (l *streamedLayer) DiffID() (v1.Hash, error)             { return l.digest, nil }
func (l *streamedLayer) Compressed() (io.ReadCloser, error)   { return l.open(), nil }
func (l *streamedLayer) Uncompressed() (io.ReadCloser, error) { return l.open(), nil }
func (l *streamedLayer) Size() (int64, error)                 { return l.size + 2048, nil }
func (l *streamedLayer) MediaType() (types.MediaType, error)  { return types.OCIUncompressedLayer, nil }

// Importing a 64 MiB file allocates a small fraction of it: contents are
// streamed, never buffered whole.
func TestImportStreamsContent(t *testing.T) {
	const size = 64 << 20
	img := imageOf(t, newStreamedLayer(t, 1, size))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res, err := Import(img, Options{})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Bytes != size {
		t.Fatalf("imported %d bytes, want %d", res.Stats.Bytes, size)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/8 {
		t.Errorf("import of a %d-byte file allocated %d bytes", size, alloc)
	}
}

// BenchmarkImport imports a 1 GiB, 20,000-file uncompressed layer with the
// digest-only sink (make bench): the cost of reading the layer, checking
// its digests and computing every file's fs-verity digest.
func BenchmarkImport(b *testing.B) {
	const files, size = 20000, 52 << 10
	img := imageOf(b, newStreamedLayer(b, files, size))
	b.SetBytes(files * size)
	for b.Loop() {
		res, err := Import(img, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if res.Stats.Files != files {
			b.Fatalf("%d files", res.Stats.Files)
		}
	}
}
