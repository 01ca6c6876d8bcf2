// Command gentree writes a deterministic benchmark tree.
//
// The default tree: 20,000 files totalling about 1 GiB of incompressible
// data over 200 directories (many small files, a few large ones), the
// throughput tree. With -entries N: a tree of N entries shaped like an OS
// image (mostly small files, 1 in 20 entries a symlink, 100 entries per
// directory), the scale tree.
package main

import (
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
)

func main() {
	entries := flag.Int("entries", 0, "write a scale tree of this many entries instead of the throughput tree")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: gentree [-entries N] DIR")
		os.Exit(2)
	}
	var err error
	if *entries > 0 {
		err = scaleTree(flag.Arg(0), *entries)
	} else {
		err = throughputTree(flag.Arg(0))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gentree:", err)
		os.Exit(1)
	}
}

func throughputTree(root string) error {
	rng := rand.New(rand.NewSource(42))
	buf := make([]byte, 8<<20)
	var total int64
	for i := 0; i < 20000; i++ {
		size := rng.Intn(40 << 10) // small and medium files
		if i%200 == 0 {
			size = 6<<20 + rng.Intn(1<<20) // 100 large files
		}
		dir := filepath.Join(root, fmt.Sprintf("d%03d", i%200))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		rng.Read(buf[:size])
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), buf[:size], 0o644); err != nil {
			return err
		}
		total += int64(size)
	}
	fmt.Printf("%d files, %d bytes\n", 20000, total)
	return nil
}

// scaleTree writes n entries (directories included) 100 to a directory,
// directories nested two deep; file sizes follow an OS image's: most
// under 4 KiB, a few tens of KiB.
func scaleTree(root string, n int) error {
	rng := rand.New(rand.NewSource(int64(n)))
	buf := make([]byte, 64<<10)
	written, dirs := 0, 0
	for written < n {
		dir := filepath.Join(root, fmt.Sprintf("d%03d", dirs/100), fmt.Sprintf("d%05d", dirs))
		dirs++
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		written++
		for i := 0; i < 99 && written < n; i, written = i+1, written+1 {
			name := filepath.Join(dir, fmt.Sprintf("entry%02d", i))
			if i%20 == 19 {
				if err := os.Symlink(fmt.Sprintf("entry%02d", i-1), name); err != nil {
					return err
				}
				continue
			}
			size := rng.Intn(4 << 10)
			if i%10 == 0 {
				size = rng.Intn(len(buf))
			}
			rng.Read(buf[:size])
			if err := os.WriteFile(name, buf[:size], 0o644); err != nil {
				return err
			}
		}
	}
	fmt.Printf("%d entries\n", written)
	return nil
}
