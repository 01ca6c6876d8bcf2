// Package install writes a bootable disk for an image: a GPT with an ESP
// (systemd-boot as the fallback loader, loader.conf, the image's signed UKI
// as a counted Type #2 entry) and an ext4 root partition with fs-verity
// holding the store (composefs/) and the state directory (state/).
package install

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"cfsboot/deploy"
	"cfsboot/disk"
	"cfsboot/verity"
)

// Seams are the operations other packages provide; the CLI fills them.
type Seams struct {
	// Import adds the image ref to the store at storeDir on the host,
	// without fs-verity (the host kernel may lack it; Seal enables it),
	// and returns its composefs digest and its os-release ID.
	Import func(ctx context.Context, ref, storeDir string) (d verity.Digest, osID string, err error)
	// BuildUKI builds and signs the UKI for a digest and command line.
	BuildUKI deploy.BuildUKI
	// Bootloader returns the host path of the signed systemd-boot binary.
	Bootloader func(ctx context.Context) (string, error)
	// Seal enables fs-verity on every object and image of the store in
	// the root partition of the disk file or device.
	Seal func(ctx context.Context, disk string, root disk.Partition) error
}

// Options describe one installation.
type Options struct {
	Image        string
	Disk         string // file (created with Size) or block device
	Size         int64
	ESPSize      int64 // 0: DefaultESPSize
	CmdlineExtra string
	Timeout      int // loader.conf menu timeout, seconds
	Log          func(format string, args ...any)
}

// DefaultESPSize holds systemd-boot and a few UKIs with their initrds.
const DefaultESPSize = 512 << 20

// Result is what an installation made.
type Result struct {
	Digest   verity.Digest
	Entry    string // file name in EFI/Linux
	ESP      disk.Partition
	Root     disk.Partition
	OS       string
	DiskGUID disk.GUID
}

// Layout on the root partition.
const (
	StoreDir = "composefs"
	StateDir = "state"
)

func (o Options) logf(format string, args ...any) {
	if o.Log != nil {
		o.Log(format, args...)
	}
}

// Install writes the disk. Nothing is written to the disk before the store,
// the UKI and the ESP image are ready on the host.
func Install(ctx context.Context, o Options, s Seams) (*Result, error) {
	if s.Import == nil || s.BuildUKI == nil || s.Bootloader == nil || s.Seal == nil {
		return nil, errors.New("install: the seams need Import, BuildUKI, Bootloader and Seal (bootimage.Builder.Seams gives them)")
	}
	espSize := o.ESPSize
	if espSize == 0 {
		espSize = DefaultESPSize
	}
	work, err := os.MkdirTemp("", "cfsboot-install-")
	if err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	defer os.RemoveAll(work)

	// The disk is only checked now; it is opened (and a file truncated)
	// when everything to write is ready.
	size, err := disk.Size(o.Disk, o.Size)
	if err != nil {
		return nil, err
	}
	tab, err := disk.Layout(size, []disk.Partition{
		{Type: disk.TypeESP, Name: "ESP", Size: espSize},
		{Type: disk.TypeRootX86_64, Name: "root"},
	})
	if err != nil {
		return nil, fmt.Errorf("install on %s: %w", o.Disk, err)
	}
	esp, root := tab.Partitions[0], tab.Partitions[1]

	staging := filepath.Join(work, "root")
	for _, d := range []string{filepath.Join(staging, StoreDir), filepath.Join(staging, StateDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("install: %w", err)
		}
	}
	o.logf("importing %s", o.Image)
	images := &stagedImages{dir: filepath.Join(staging, StoreDir), ref: o.Image}
	// Import first: the OS ID names the entries and the loader.conf glob.
	digest, osID, err := s.Import(ctx, o.Image, images.dir)
	if err != nil {
		return nil, fmt.Errorf("install: import %s: %w", o.Image, err)
	}
	images.digest = &digest
	if osID == "" {
		osID = "linux"
	}

	o.logf("making the ESP (%d MiB)", esp.Bytes()>>20)
	loader, err := s.Bootloader(ctx)
	if err != nil {
		return nil, fmt.Errorf("install: boot loader: %w", err)
	}
	conf := filepath.Join(work, "loader.conf")
	if err := os.WriteFile(conf, deploy.LoaderConfig(osID, o.Timeout), 0o644); err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	fat := filepath.Join(work, "esp.img")
	err = disk.MakeFAT(fat, esp.Bytes(), "ESP", []disk.ESPFile{
		{Path: "EFI/BOOT/BOOTX64.EFI", Source: loader},
		{Path: "EFI/systemd/systemd-bootx64.efi", Source: loader},
		{Path: deploy.LoaderConf, Source: conf},
	})
	if err != nil {
		return nil, err
	}
	m := &deploy.Manager{
		ESP: deploy.ImageESP{Image: fat}, OS: osID, Images: images, UKI: s.BuildUKI,
		Cmdline: strings.TrimSpace("root=PARTUUID=" + root.UUID.String() + " rw " + o.CmdlineExtra),
		Log:     o.Log,
	}
	dep, err := m.Deploy(ctx, o.Image, 1)
	if err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}

	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("install: %w (nothing was written to %s)", err, o.Disk)
	}
	o.logf("writing the partition table, the ESP and the root filesystem to %s", o.Disk)
	f, _, err := disk.Open(o.Disk, size)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := tab.Write(f); err != nil {
		return nil, fmt.Errorf("install on %s: %w", o.Disk, err)
	}
	if err := disk.CopyAt(f, esp.Offset(), esp.Bytes(), fat); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("install on %s: %w", o.Disk, err)
	}
	// mkfs.ext4 opens a block device exclusively: let go of it first.
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("install on %s: %w", o.Disk, err)
	}
	if err := disk.MakeExt4(o.Disk, root.Offset(), root.Bytes(), root.UUID, "root", staging); err != nil {
		return nil, err
	}
	o.logf("sealing the store (fs-verity)")
	if err := s.Seal(ctx, o.Disk, root); err != nil {
		return nil, fmt.Errorf("install: seal: %w", err)
	}
	return &Result{Digest: digest, Entry: dep.File, ESP: esp, Root: root, OS: osID, DiskGUID: tab.DiskGUID}, nil
}

// stagedImages is the store being built on the host: it holds the one
// image Install imported.
type stagedImages struct {
	dir    string
	ref    string
	digest *verity.Digest
}

func (s *stagedImages) Add(_ context.Context, ref string) (verity.Digest, error) {
	if s.digest == nil || ref != s.ref {
		return verity.Digest{}, fmt.Errorf("install stages %s only, not %s", s.ref, ref)
	}
	return *s.digest, nil
}

func (s *stagedImages) List() ([]verity.Digest, error) {
	if s.digest == nil {
		return nil, nil
	}
	return []verity.Digest{*s.digest}, nil
}

func (s *stagedImages) Remove(d verity.Digest) error {
	return fmt.Errorf("install: nothing to remove (asked for %s)", d)
}

func (s *stagedImages) GC() error { return nil }
