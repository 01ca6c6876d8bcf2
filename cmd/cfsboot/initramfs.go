package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"cfsboot/initramfs/build"
)

// initramfsBuilt is the JSON schema of `initramfs --json`.
type initramfsBuilt struct {
	Output       string   `json:"output"`
	Bytes        int64    `json:"bytes"`
	Uncompressed int64    `json:"uncompressed"`
	Compression  string   `json:"compression"`
	Modules      []string `json:"modules"`
}

func newInitramfsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "initramfs -o FILE [--kernel-modules DIR --modules a,b,...]",
		Short: "Build the initrd for cfsboot-init",
		Long: `Write a deterministic newc cpio initrd (same inputs, same bytes;
SOURCE_DATE_EPOCH sets the mtime) holding cfsboot-init as /init, the named
kernel modules plus their dependencies (resolved from each module's .modinfo;
distribution kernel packages ship no modules.dep) with their load order,
/dev/console, optionally busybox-static as a debug shell, extra kernel
command line words that the init reads before /proc/cmdline, and a
composefs-setup-root configuration (how /etc, /var and / are set up; checked
before it is embedded).

JSON schema (--json): {"output", "bytes", "uncompressed", "compression", "modules"}.`,
		Example: `  cfsboot initramfs --kernel-modules /usr/lib/modules/$(uname -r) \
      --modules erofs,overlay,loop,virtio_blk -o initrd.img
  cfsboot initramfs --shell --config cmdline.txt -o initrd-debug.img`,
		Args: exactArgs(),
	}
	f := cmd.Flags()
	modDir := f.String("kernel-modules", "", "the kernel's /lib/modules/<version> `DIR`ectory")
	mods := f.StringSlice("modules", nil, "modules to include (their dependencies are added)")
	initPath := f.String("init", "", "the init binary (default: cfsboot-init next to this program)")
	shell := f.Bool("shell", false, "include busybox-static as a debug shell (rd.shell, rd.break)")
	busybox := f.String("busybox", "/bin/busybox", "the busybox-static binary for --shell")
	allowSB := f.Bool("allow-shell-under-secure-boot", false, "let rd.shell and rd.break open the shell even when UEFI Secure Boot is on (it is measured as debug-shell either way)")
	allowInsecure := f.Bool("allow-insecure", false, "let the init boot command line entries with the '?' prefix (composefs.digest=?..., composefs=?...) without fs-verity, measured as composefs-insecure:<hex>; without it they are refused")
	setupRootConf := f.String("setup-root-conf", "", "a composefs-setup-root configuration `FILE` (TOML: [etc] mount = none|bind|overlay|transient, [var] mount = ..., [root] transient = true|false) for /usr/lib/composefs/setup-root-conf.toml")
	config := f.String("config", "", "a `FILE` of extra kernel command line words for the init")
	compression := f.String("compress", "zstd", "zstd, gzip, xz or none")
	out := f.StringP("output", "o", "", "the initrd `FILE` to write")
	asJSON := jsonFlag(f)
	cmd.MarkFlagRequired("output")
	cmd.MarkFlagsRequiredTogether("kernel-modules", "modules")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		s := build.Spec{ModulesDir: *modDir, Modules: *mods, Compression: *compression, Init: *initPath}
		if s.Init == "" {
			self, err := os.Executable()
			if err != nil {
				return err
			}
			s.Init = filepath.Join(filepath.Dir(self), "cfsboot-init")
		}
		if *shell {
			s.Busybox = *busybox
		}
		s.AllowShellUnderSecureBoot = *allowSB
		s.AllowInsecure = *allowInsecure
		if *setupRootConf != "" {
			data, err := os.ReadFile(*setupRootConf)
			if err != nil {
				return err
			}
			s.SetupRootConf = data
		}
		if *config != "" {
			data, err := os.ReadFile(*config)
			if err != nil {
				return err
			}
			s.Cmdline = string(data)
		}
		if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
			var err error
			if s.Epoch, err = strconv.ParseUint(v, 10, 64); err != nil {
				return fmt.Errorf("SOURCE_DATE_EPOCH=%s: %w", v, err)
			}
		}
		res, err := writeInitramfs(*out, s)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(cmd, initramfsBuilt{Output: *out, Bytes: res.Size, Uncompressed: res.Uncompress, Compression: *compression, Modules: res.Modules})
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s: %d bytes (%s; %d uncompressed), modules: %s\n", *out, res.Size, *compression, res.Uncompress, strings.Join(res.Modules, " "))
		return nil
	}
	return cmd
}

// writeInitramfs builds the initrd into path, removing it on failure.
func writeInitramfs(path string, s build.Spec) (build.Result, error) {
	f, err := os.Create(path)
	if err != nil {
		return build.Result{}, err
	}
	res, err := build.Build(f, s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return res, err
}
