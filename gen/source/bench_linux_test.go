package source_test

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"cfsboot/gen/source"
)

// benchTree writes the make bench tree's shape at 1/10 scale: 2,000 files,
// about 110 MB, most under 40 KiB and ten of 6-7 MiB.
func benchTree(b *testing.B) (string, int64) {
	b.Helper()
	root := b.TempDir()
	rng := rand.New(rand.NewSource(42))
	buf := make([]byte, 8<<20)
	var total int64
	for i := 0; i < 2000; i++ {
		size := rng.Intn(40 << 10)
		if i%200 == 0 {
			size = 6<<20 + rng.Intn(1<<20)
		}
		dir := filepath.Join(root, fmt.Sprintf("d%02d", i%20))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		rng.Read(buf[:size])
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d", i)), buf[:size], 0o644); err != nil {
			b.Fatal(err)
		}
		total += int64(size)
	}
	return root, total
}

// BenchmarkDir is the digest-only image create's reading and hashing:
// every file's fs-verity digest, on all cores, warm cache.
func BenchmarkDir(b *testing.B) {
	root, total := benchTree(b)
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := source.Dir(root, source.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
