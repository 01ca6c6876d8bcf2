// Command deployvm is the init of the power-cut QEMU test: it mounts the
// ESP of the installed disk (deployvm.esp=, a root= value) and runs a real
// deploy of deployvm.ref onto it, the UKI read from the second disk
// (deployvm.ukisize= bytes of /dev/vdb), reporting "DEPLOYVM" lines. The
// test kills QEMU at random moments of it: a power cut.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"cfsboot/deploy"
	"cfsboot/initramfs/blockdev"
	"cfsboot/internal/vminit"
	"cfsboot/verity"
)

func main() {
	if err := run(); err != nil {
		fmt.Printf("DEPLOYVM failed: %v\n", err)
	}
	vminit.PowerOff()
}

// images knows the refs the test names; deploy adds one more.
type images map[verity.Digest]bool

func (m images) Add(_ context.Context, ref string) (verity.Digest, error) {
	d := verity.ComputeBytes([]byte(ref))
	m[d] = true
	return d, nil
}
func (m images) List() ([]verity.Digest, error) {
	var ds []verity.Digest
	for d := range m {
		ds = append(ds, d)
	}
	return ds, nil
}
func (m images) Remove(d verity.Digest) error { delete(m, d); return nil }
func (m images) GC() error                    { return nil }

func run() error {
	if err := vminit.Start(); err != nil {
		return err
	}
	os.MkdirAll("/tmp", 0o755)
	if err := unix.Mount("tmpfs", "/tmp", "tmpfs", 0, ""); err != nil {
		return fmt.Errorf("mount /tmp: %w", err)
	}
	raw, _ := os.ReadFile("/proc/cmdline")
	args := map[string]string{}
	for _, w := range strings.Fields(string(raw)) {
		if k, v, ok := strings.Cut(w, "="); ok && strings.HasPrefix(k, "deployvm.") {
			args[strings.TrimPrefix(k, "deployvm.")] = v
		}
	}
	ukiSize, err := strconv.ParseInt(args["ukisize"], 10, 64)
	if err != nil {
		return fmt.Errorf("deployvm.ukisize: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dev, err := blockdev.Wait(ctx, args["esp"])
	if err != nil {
		return err
	}
	os.MkdirAll("/efi", 0o755)
	if err := unix.Mount(dev.Path, "/efi", "vfat", 0, ""); err != nil {
		return fmt.Errorf("mount %s: %w", dev.Path, err)
	}
	esp := deploy.DirESP("/efi")
	osID, err := deploy.OSFromESP(esp)
	if err != nil {
		return err
	}
	known := images{}
	for _, ref := range strings.Split(args["known"], ",") {
		known.Add(ctx, ref)
	}
	m := &deploy.Manager{ESP: esp, OS: osID, Images: known, Cmdline: args["cmdline"],
		UKI: func(_ context.Context, _ verity.Digest, _, out string) error {
			src, err := os.Open("/dev/vdb")
			if err != nil {
				return err
			}
			defer src.Close()
			dst, err := os.Create(out)
			if err != nil {
				return err
			}
			_, err = io.CopyN(dst, src, ukiSize)
			if cerr := dst.Close(); err == nil {
				err = cerr
			}
			return err
		},
		Log: func(format string, a ...any) { fmt.Printf("DEPLOYVM "+format+"\n", a...) },
	}
	fmt.Println("DEPLOYVM deploying")
	d, err := m.Deploy(context.Background(), args["ref"], 2)
	if err != nil {
		return err
	}
	if err := unix.Unmount("/efi", 0); err != nil {
		return fmt.Errorf("unmount the ESP: %w", err)
	}
	fmt.Printf("DEPLOYVM done %s\n", d.File)
	return nil
}
