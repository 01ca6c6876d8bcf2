// Command cfsboot-seal is the init of the short sealing VM `cfsboot
// install` boots when the host kernel cannot enable fs-verity: it mounts
// the installed root partition (cfsboot.seal.root=, a root= value), enables
// fs-verity on every object and image of the store there
// (cfsboot.seal.store=, default composefs), checking each digest against
// its name, with cfsboot.seal.gc removes the objects no image references
// (what a host without fs-verity cannot do: it cannot read sealed images),
// reports progress on the console and powers off.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"cfsboot/gen/store"
	"cfsboot/initramfs/blockdev"
	"cfsboot/internal/vminit"
	"cfsboot/seal/inplace"
)

const mnt = "/mnt"

func main() {
	defer func() {
		if r := recover(); r != nil {
			fmt.Println(inplace.FailedLine(fmt.Errorf("panic: %v", r)))
			vminit.PowerOff()
		}
	}()
	if err := run(); err != nil {
		fmt.Println(inplace.FailedLine(err))
	}
	vminit.PowerOff()
}

func run() error {
	if err := vminit.Start(); err != nil {
		return err
	}
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	spec, storeDir, gc := "", "composefs", false
	for _, w := range strings.Fields(string(raw)) {
		if v, ok := strings.CutPrefix(w, "cfsboot.seal.root="); ok {
			spec = v
		}
		if v, ok := strings.CutPrefix(w, "cfsboot.seal.store="); ok {
			storeDir = v
		}
		gc = gc || w == "cfsboot.seal.gc"
	}
	if spec == "" {
		return fmt.Errorf("no cfsboot.seal.root= on the kernel command line")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dev, err := blockdev.Wait(ctx, spec)
	if err != nil {
		return err
	}
	os.MkdirAll(mnt, 0o755)
	if err := unix.Mount(dev.Path, mnt, "ext4", 0, ""); err != nil {
		return fmt.Errorf("mount %s (%s): %w", dev.Path, spec, err)
	}
	last := time.Time{}
	n, err := inplace.Seal(filepath.Join(mnt, storeDir), func(done, total int) {
		if done == total || time.Since(last) > time.Second {
			fmt.Println(inplace.ProgressLine(done, total))
			last = time.Now()
		}
	})
	if err != nil {
		return err
	}
	if gc {
		if err := collect(filepath.Join(mnt, storeDir)); err != nil {
			return err
		}
	}
	if err := unix.Unmount(mnt, 0); err != nil {
		return fmt.Errorf("unmount %s: %w", dev.Path, err)
	}
	fmt.Println(inplace.SealedLine(n))
	return nil
}

// collect removes the objects no image of the store at dir references.
func collect(dir string) error {
	st, err := store.OpenExisting(dir, store.OpenOptions{Lock: store.Exclusive})
	if err != nil {
		return err
	}
	defer st.Close()
	removed, freed, err := st.GC(false)
	if err != nil {
		return err
	}
	fmt.Printf("cfsboot-seal: removed %d unreferenced objects (%d bytes)\n", len(removed), freed)
	return nil
}
