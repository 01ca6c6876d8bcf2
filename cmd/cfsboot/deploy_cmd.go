package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"cfsboot/bootimage"
	"cfsboot/deploy"
	"cfsboot/disk"
	"cfsboot/install"
)

// espCandidates are where a running system mounts its ESP (systemd's
// order: /efi, /boot/efi, /boot).
var espCandidates = []string{"/efi", "/boot/efi", "/boot"}

// target is the system the deployment commands act on.
type target struct {
	esp   deploy.ESP
	table *disk.Table // --disk only
	where string
}

// openTarget finds the ESP: the ESP partition of --disk, --esp, or the
// first of espCandidates holding loader/loader.conf.
func openTarget(espDir, diskPath string) (target, error) {
	if diskPath != "" {
		tab, err := disk.ReadTable(diskPath)
		if err != nil {
			return target{}, err
		}
		esp, err := tab.Find(disk.TypeESP)
		if err != nil {
			return target{}, fmt.Errorf("%s: %w", diskPath, err)
		}
		return target{esp: deploy.ImageESP{Image: diskPath, Offset: esp.Offset()}, table: tab, where: diskPath}, nil
	}
	if espDir != "" {
		return target{esp: deploy.DirESP(espDir), where: espDir}, nil
	}
	for _, d := range espCandidates {
		if _, err := os.Stat(filepath.Join(d, deploy.LoaderConf)); err == nil {
			return target{esp: deploy.DirESP(d), where: d}, nil
		}
	}
	return target{}, fmt.Errorf("no ESP with %s in %s; give --esp DIR or --disk FILE", deploy.LoaderConf, strings.Join(espCandidates, ", "))
}

func (t target) manager(cmd *cobra.Command) (*deploy.Manager, error) {
	os, err := deploy.OSFromESP(t.esp)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.where, err)
	}
	return &deploy.Manager{ESP: t.esp, OS: os, Log: progressLog(cmd)}, nil
}

func espFlags(cmd *cobra.Command) (espDir, diskPath *string) {
	espDir = cmd.Flags().String("esp", "", "the mounted ESP `DIR` (default: the first of /efi, /boot/efi, /boot with loader/loader.conf)")
	diskPath = cmd.Flags().String("disk", "", "work offline on the installed disk `FILE` or device")
	cmd.MarkFlagsMutuallyExclusive("esp", "disk")
	return espDir, diskPath
}

// builderFlags adds the flags saying where the boot pieces come from and
// returns the function making the builder from them and o (the options
// of the command's own flags).
func builderFlags(cmd *cobra.Command) func(o bootimage.Options) (*bootimage.Builder, error) {
	f := cmd.Flags()
	keys := f.String("keys", "", "the Secure Boot keys `DIR` (from cfsboot keys create) whose db key signs the UKI and the boot loader")
	stub := f.String("stub", "", "systemd-stub `FILE` (default: the image's "+bootimage.StubPath+", else the host's)")
	mods := f.StringSlice("modules", nil, "initrd modules (default: "+strings.Join(bootimage.DefaultModules, ", ")+", those the image's kernel has)")
	initPath := f.String("init", "", "the cfsboot-init `FILE` (default: the one next to this program)")
	return func(o bootimage.Options) (*bootimage.Builder, error) {
		if *keys != "" {
			if st, err := os.Stat(*keys); err != nil || !st.IsDir() {
				return nil, usageErrorf("--keys %s: not a directory", *keys)
			}
		}
		o.Keys, o.Stub, o.Init = *keys, *stub, *initPath
		if f.Changed("modules") {
			o.Modules = *mods
		}
		o.Log = progressLog(cmd)
		return bootimage.New(o)
	}
}

// parseSize reads a size with an optional binary suffix: 8G, 512M, 1048576.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	num := strings.TrimSuffix(strings.ToUpper(s), "B")
	if i := strings.IndexAny(num, "KMGT"); i >= 0 && i == len(num)-1 {
		mult = 1 << (10 * (strings.IndexByte("KMGT", num[i]) + 1))
		num = num[:i]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, usageErrorf("size %q: want a positive number with an optional K, M, G or T suffix", s)
	}
	return n * mult, nil
}

func newInstallCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "install --image REF --disk FILE|/dev/X",
		Short: "Write a bootable disk for an image: GPT, ESP with systemd-boot and the signed UKI, ext4 root with the sealed store",
		Long: `Write a GPT disk: an EFI system partition (FAT32) with systemd-boot as the
fallback loader (EFI/BOOT/BOOTX64.EFI), loader/loader.conf, and the image's
signed UKI as a Boot Loader Specification Type #2 entry with a boot counter
(EFI/Linux/<os>-1-<digest12>+3.efi), and a root partition (ext4 with
fs-verity) holding the object store (composefs/) and the state directory
(state/). The UKI's command line is composefs=<digest> root=PARTUUID=<root>
rw and --cmdline-extra. A disk FILE is created (or truncated) with --size.

The kernel and its modules come from the image (/usr/lib/modules/<version>/),
the initrd holds cfsboot-init and the modules the machine needs, systemd-stub
and systemd-boot come from the image or the host (--stub, --bootloader), and
the db key of --keys signs the UKI and systemd-boot. When the host kernel
cannot enable fs-verity, the store is sealed in a short helper VM
(qemu-system-x86_64, TCG) booting the image's kernel with cfsboot-seal (next
to this program).`,
		Example: "  cfsboot install --image oci:./debian:latest --disk disk.img --size 8G --keys ./keys",
		Args:    exactArgs(),
	}
	image := cmd.Flags().String("image", "", "the image `REF`erence to install")
	diskPath := cmd.Flags().String("disk", "", "the disk `FILE` (created) or block device to write")
	size := cmd.Flags().String("size", "", "size of a disk FILE (K, M, G, T suffixes; default 8G); a block device keeps its own")
	espSize := cmd.Flags().String("esp-size", "512M", "size of the EFI system partition")
	extra := cmd.Flags().String("cmdline-extra", "", "more kernel command line words for the UKI")
	timeout := cmd.Flags().Int("timeout", 3, "systemd-boot menu timeout in seconds")
	bootloader := cmd.Flags().String("bootloader", "", "systemd-boot `FILE` (default: the image's "+bootimage.BootloaderPath+", else the host's)")
	sealInit := cmd.Flags().String("seal-init", "", "the cfsboot-seal `FILE` for the sealing VM (default: the one next to this program)")
	newBuilder := builderFlags(cmd)
	cmd.MarkFlagRequired("image")
	cmd.MarkFlagRequired("disk")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var sz int64 // 0: a block device's own size, or disk.DefaultFileSize
		if *size != "" {
			var err error
			if sz, err = parseSize(*size); err != nil {
				return err
			}
		}
		esz, err := parseSize(*espSize)
		if err != nil {
			return err
		}
		b, err := newBuilder(bootimage.Options{Bootloader: *bootloader, SealInit: *sealInit})
		if err != nil {
			return err
		}
		defer b.Close()
		o := install.Options{Image: *image, Disk: *diskPath, Size: sz, ESPSize: esz, CmdlineExtra: *extra, Timeout: *timeout,
			Log: progressLog(cmd)}
		res, err := install.Install(cmd.Context(), o, b.Seams())
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "installed %s on %s: entry EFI/Linux/%s, root PARTUUID=%s\n", res.Digest, *diskPath, res.Entry, res.Root.UUID)
		return nil
	}
	return cmd
}

func newDeployCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deploy REF",
		Short: "Add an image and make it the default deployment, counting its boots",
		Long: `Add the image to the store, write its signed UKI as a new boot loader entry
with 3 tries, and make it the default in one rename. The previous default
stays as the rollback entry: if the new one fails all its tries,
systemd-boot boots the rollback by itself. Deployments beyond --keep are
removed with their UKIs, state directories and unreferenced objects: those
that used up their tries first, never the booted one.

On a running system the store is on the root device cfsboot-init left at
/sysroot (or /run/cfsboot/sysroot), the ESP is found in /efi, /boot/efi or
/boot, and the new UKI keeps the running kernel command line; --root and
--esp name them for a mounted system. The store seals what is added when its
filesystem has fs-verity. --disk works offline on an installed disk file or
device (as root): its root partition is loop-mounted, and what was added is
sealed afterwards as cfsboot install seals (in place, or in the sealing VM).`,
		Example: "  cfsboot deploy oci:./debian:v2\n  cfsboot deploy --disk disk.img --keys ./keys oci:./debian:v2\n  cfsboot deploy --root /mnt --esp /mnt/efi --cmdline 'root=PARTUUID=... rw' --keep 3 oci:./debian:v2",
		Args:    exactArgs("REF"),
	}
	espDir, diskPath := espFlags(cmd)
	root := cmd.Flags().String("root", "", "the physical root `DIR` holding composefs/ and state/ (default: the running system's)")
	keep := cmd.Flags().Int("keep", 2, "deployments to keep (the booted one always stays)")
	cmdline := cmd.Flags().String("cmdline", "", "kernel command line besides composefs= (default: the running kernel's; with --disk the default entry's)")
	newBuilder := builderFlags(cmd)
	cmd.MarkFlagsMutuallyExclusive("root", "disk")
	cmd.RunE = func(cmd *cobra.Command, args []string) (err error) {
		if *keep < 1 {
			return usageErrorf("--keep %d: at least 1", *keep)
		}
		if *cmdline == "" && *root != "" {
			return usageErrorf("--cmdline is needed with --root (at least root=...)")
		}
		t, err := openTarget(*espDir, *diskPath)
		if err != nil {
			return err
		}
		m, err := t.manager(cmd)
		if err != nil {
			return err
		}
		b, err := newBuilder(bootimage.Options{})
		if err != nil {
			return err
		}
		defer b.Close()
		m.UKI, m.Cmdline = b.BuildUKI, *cmdline
		ctx := cmd.Context()
		switch {
		case t.table != nil:
			rootPart, err := t.table.Find(disk.TypeRootX86_64)
			if err != nil {
				return fmt.Errorf("%s: %w", *diskPath, err)
			}
			if m.Cmdline == "" {
				if m.Cmdline, err = bootimage.DefaultCmdline(m); err != nil {
					return err
				}
			}
			images, stateDir, done, err := bootimage.OpenDisk(ctx, *diskPath, rootPart, b)
			if err != nil {
				return err
			}
			m.Images, m.StateDir = images, stateDir
			_, err = m.Deploy(ctx, args[0], *keep)
			return errors.Join(err, done())
		case *root == "":
			// The running system: keep its deployment and its command line.
			if *root, err = bootimage.FindPhysicalRoot(); err != nil {
				return err
			}
			restore, err := bootimage.MakeWritable(*root)
			if err != nil {
				return err
			}
			defer func() { err = errors.Join(err, restore()) }()
			booted, err := deploy.ReadBooted()
			if err != nil {
				return err
			}
			m.Booted = booted.Digest
			if m.Cmdline == "" {
				raw, err := os.ReadFile("/proc/cmdline")
				if err != nil {
					return err
				}
				m.Cmdline = deploy.CarriedCmdline(string(raw))
			}
		}
		if m.Images, err = bootimage.OpenImages(*root, b); err != nil {
			return err
		}
		m.StateDir = filepath.Join(*root, install.StateDir)
		_, err = m.Deploy(ctx, args[0], *keep)
		return err
	}
	return cmd
}

func newRollbackCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Make the rollback deployment the default",
		Long: `Make the rollback deployment (the next good one after the default) the
default, in one rename. Its boot counter is kept.`,
		Example: "  cfsboot rollback\n  cfsboot rollback --disk disk.img",
		Args:    exactArgs(),
	}
	espDir, diskPath := espFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		t, err := openTarget(*espDir, *diskPath)
		if err != nil {
			return err
		}
		m, err := t.manager(cmd)
		if err != nil {
			return err
		}
		d, err := m.Rollback()
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "default: %s\n", d.ID())
		return nil
	}
	return cmd
}

func newStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the deployments: booted, default, rollback, tries left, blessed",
		Long: `Show every deployment on the ESP in the order systemd-boot picks them: the
default first, then the rollback; entries that used up their tries last.
The booted deployment comes from the root mount's composefs:<digest> source
and systemd-boot's LoaderEntrySelected EFI variable.

JSON schema (--json): {"booted", "booted_entry", "booted_blessed", "default",
"rollback", "entries": [{"id", "file", "digest", "serial", "tries_left"
(null when blessed), "tries_done", "blessed", "bad", "default", "rollback",
"booted"}]}.`,
		Example: "  cfsboot status\n  cfsboot status --disk disk.img --json",
		Args:    exactArgs(),
	}
	espDir, diskPath := espFlags(cmd)
	root := cmd.Flags().String("root", "", "the physical root `DIR` holding composefs/, for full digests (default: the running system's, when found)")
	asJSON := jsonFlag(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		t, err := openTarget(*espDir, *diskPath)
		if err != nil {
			return err
		}
		m, err := t.manager(cmd)
		if err != nil {
			return err
		}
		var b deploy.Booted
		if *diskPath == "" {
			if b, err = deploy.ReadBooted(); err != nil {
				return err
			}
		}
		dir := *root
		if dir == "" && *diskPath == "" {
			// Full digests are a bonus on a running system: no store, no error.
			dir, _ = bootimage.FindPhysicalRoot()
		}
		if dir != "" {
			if m.Images, err = bootimage.OpenImages(dir, nil); err != nil {
				return err
			}
		}
		st, err := m.Status(b)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(cmd, st)
		}
		printStatus(cmd, st)
		return nil
	}
	return cmd
}

func printStatus(cmd *cobra.Command, st deploy.Status) {
	w := cmd.OutOrStdout()
	if st.Booted != "" || st.BootedEntry != "" {
		fmt.Fprintf(w, "booted:   %s %s (blessed: %v)\n", st.BootedEntry, st.Booted, st.BootedBlessed)
	}
	fmt.Fprintf(w, "default:  %s\nrollback: %s\n", st.Default, st.Rollback)
	for _, e := range st.Entries {
		var marks []string
		for _, m := range []struct {
			on   bool
			name string
		}{{e.Booted, "booted"}, {e.Default, "default"}, {e.Rollback, "rollback"}, {e.Bad, "bad"}, {e.Blessed, "blessed"}} {
			if m.on {
				marks = append(marks, m.name)
			}
		}
		tries := "-"
		if e.TriesLeft != nil {
			tries = strconv.Itoa(*e.TriesLeft)
		}
		fmt.Fprintf(w, "  %-40s tries left %s  %s\n", e.File, tries, strings.Join(marks, ","))
	}
}
