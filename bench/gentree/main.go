// Command gentree writes the benchmark tree: 20,000 files totalling about
// 1 GiB of incompressible, deterministic data over 200 directories, shaped
// like an OS image (many small files, a few large ones).
package main

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gentree DIR")
		os.Exit(2)
	}
	rng := rand.New(rand.NewSource(42))
	buf := make([]byte, 8<<20)
	var total int64
	for i := 0; i < 20000; i++ {
		size := rng.Intn(40 << 10) // small and medium files
		if i%200 == 0 {
			size = 6<<20 + rng.Intn(1<<20) // 100 large files
		}
		dir := filepath.Join(os.Args[1], fmt.Sprintf("d%03d", i%200))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			panic(err)
		}
		rng.Read(buf[:size])
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), buf[:size], 0o644); err != nil {
			panic(err)
		}
		total += int64(size)
	}
	fmt.Printf("%d files, %d bytes\n", 20000, total)
}
