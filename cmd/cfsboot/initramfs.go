package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"cfsboot/initramfs/build"
)

func init() {
	register("initramfs", "build the initrd for cfsboot-init", buildInitramfs)
}

// buildInitramfs: cfsboot initramfs --kernel-modules DIR --modules a,b,...
// [--init PATH] [--shell] [--config FILE] [--compress zstd|gzip|xz|none] -o FILE
func buildInitramfs(args []string) error {
	fs := flag.NewFlagSet("initramfs", flag.ContinueOnError)
	modDir := fs.String("kernel-modules", "", "the kernel's /lib/modules/<version> directory")
	mods := fs.String("modules", "", "comma-separated modules to include (dependencies are added)")
	initPath := fs.String("init", "", "the init binary (default: cfsboot-init next to this program)")
	shell := fs.Bool("shell", false, "include busybox-static as a debug shell (rd.shell, rd.break)")
	busybox := fs.String("busybox", "/bin/busybox", "the busybox-static binary for --shell")
	config := fs.String("config", "", "a file of extra kernel command line words for the init")
	compression := fs.String("compress", "zstd", "zstd, gzip, xz or none")
	out := fs.String("o", "", "output file")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if *out == "" || len(pos) != 0 || (*mods != "" && *modDir == "") {
		return errors.New("usage: cfsboot initramfs --kernel-modules DIR --modules a,b,... [--init PATH] [--shell] [--config FILE] [--compress zstd|gzip|xz|none] -o FILE")
	}
	s := build.Spec{ModulesDir: *modDir, Compression: *compression, Init: *initPath}
	if *mods != "" {
		s.Modules = strings.Split(*mods, ",")
	}
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
	if *config != "" {
		data, err := os.ReadFile(*config)
		if err != nil {
			return err
		}
		s.Cmdline = string(data)
	}
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		if s.Epoch, err = strconv.ParseUint(v, 10, 64); err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH=%s: %w", v, err)
		}
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	res, err := build.Build(f, s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(*out)
		return err
	}
	fmt.Printf("%s: %d bytes (%s; %d uncompressed), modules: %s\n", *out, res.Size, *compression, res.Uncompress, strings.Join(res.Modules, " "))
	return nil
}
