// Command fill is the init of a test-only initrd for the power-cut test:
// it fills an object store on /dev/vda with one image after another, each
// with new objects, and prints "FILLED <n> <digest>" once image n is
// committed, until the host cuts the power.
package main

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"

	"cfsboot/gen/erofs"
	"cfsboot/gen/source"
	"cfsboot/gen/store"
	"cfsboot/internal/vminit"
)

func main() {
	if err := run(); err != nil {
		fmt.Printf("FILL FAILED: %v\n", err)
	}
	vminit.PowerOff()
}

func run() error {
	if err := vminit.Start(); err != nil {
		return err
	}
	if err := vminit.MountDisk("/dev/vda", "/mnt"); err != nil {
		return err
	}
	fmt.Println("FILL STARTED")
	for n := 1; ; n++ {
		// Half the files change every round: each image brings new objects.
		src := "/src"
		for i := 0; i < 120; i++ {
			seed := int64(i)
			if i%2 == 0 {
				seed = int64(n*1000 + i)
			}
			rng := rand.New(rand.NewSource(seed))
			data := make([]byte, 4096+rng.Intn(96<<10))
			rng.Read(data)
			p := filepath.Join(src, fmt.Sprintf("d%d", i%6), fmt.Sprintf("f%d", i))
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				return err
			}
		}
		st, err := store.Open("/mnt/store")
		if err != nil {
			return err
		}
		root, err := source.Walk(src, source.Options{})
		if err != nil {
			return err
		}
		d, _, err := st.CommitTree(root, store.CommitOptions{Erofs: erofs.DefaultOptions(), Ref: "fill"})
		st.Close()
		if err != nil {
			return err
		}
		fmt.Printf("FILLED %d %s\n", n, d)
	}
}
