package build

import (
	"bytes"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"cfsboot/initramfs/layout"
	"cfsboot/initramfs/modload"
)

func modulesDir(t *testing.T) string {
	dirs, _ := filepath.Glob("../../.cache/debian/root/linux-image-*/usr/lib/modules/*")
	if len(dirs) == 0 {
		return ""
	}
	return dirs[0]
}

func spec(t *testing.T, compression string) Spec {
	t.Helper()
	init := filepath.Join(t.TempDir(), "init")
	if err := os.WriteFile(init, []byte("#!fake init\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := Spec{Init: init, Cmdline: "rd.shell", Compression: compression}
	if dir := modulesDir(t); dir != "" {
		s.ModulesDir, s.Modules = dir, []string{"erofs", "overlay", "loop", "virtio_blk"}
	}
	if _, err := os.Stat("/bin/busybox"); err == nil {
		s.Busybox = "/bin/busybox"
	}
	return s
}

// listing is what `cpio -itv` (the oracle) reads from the archive.
func listing(t *testing.T, archive []byte, decompress ...string) string {
	t.Helper()
	if len(decompress) > 0 {
		cmd := exec.Command(decompress[0], decompress[1:]...)
		cmd.Stdin = bytes.NewReader(archive)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %v", decompress, err)
		}
		archive = out
	}
	cmd := exec.Command("cpio", "-itv", "--quiet")
	cmd.Stdin = bytes.NewReader(archive)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -itv: %v", err)
	}
	return string(out)
}

func TestDeterministicAndReadableByCpio(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio not installed")
	}
	for method, dec := range map[string][]string{"none": nil, "zstd": {"zstd", "-dc"}, "gzip": {"gzip", "-dc"}, "xz": {"xz", "-dc"}} {
		t.Run(method, func(t *testing.T) {
			s := spec(t, method)
			var a, b bytes.Buffer
			res, err := Build(&a, s)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Build(&b, s); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Fatal("two builds of the same inputs differ")
			}
			if _, err := exec.LookPath(dec0(dec)); dec != nil && err != nil {
				t.Skipf("%s not installed", dec[0])
			}
			list := listing(t, a.Bytes(), dec...)
			for _, want := range []string{"-rwxr-xr-x   1 root     root           12 Jan  1  1970 init", "crw-------   1 root     root       5,   1 Jan  1  1970 dev/console", "drwxr-xr-x   1 root     root            0 Jan  1  1970 etc/cfsboot"} {
				if !strings.Contains(list, want) {
					t.Errorf("listing lacks %q:\n%s", want, list)
				}
			}
			if s.ModulesDir != "" {
				// efivarfs is not asked for: the init needs it on UEFI machines.
				if !strings.Contains(list, "lib/modules/load.order") || !strings.Contains(list, "lib/modules/erofs.ko") || !strings.Contains(list, "lib/modules/efivarfs.ko") {
					t.Errorf("modules missing:\n%s", list)
				}
				// Decompressed, so that finit_module need not unpack them.
				if strings.Contains(list, ".ko.xz") || strings.Contains(list, ".ko.zst") {
					t.Errorf("modules stored compressed:\n%s", list)
				}
				if method == "zstd" && res.Size > 5<<20 {
					t.Errorf("initrd is %d bytes, want well under 5 MiB", res.Size)
				}
				t.Logf("%s: %d bytes compressed, %d cpio, modules %v", method, res.Size, res.Uncompress, res.Modules)
			}
			if s.Busybox != "" && !strings.Contains(list, "bin/sh -> busybox") {
				t.Errorf("shell missing:\n%s", list)
			}
		})
	}
}

func dec0(d []string) string {
	if len(d) == 0 {
		return "true"
	}
	return d[0]
}

func TestBuildErrors(t *testing.T) {
	var buf bytes.Buffer
	if _, err := Build(&buf, Spec{Init: "/nonexistent/init"}); err == nil || !strings.Contains(err.Error(), "init binary") {
		t.Errorf("missing init: %v", err)
	}
	s := spec(t, "zstd")
	s.Compression = "lz5"
	if _, err := Build(&buf, s); err == nil || !strings.Contains(err.Error(), "unknown compression") {
		t.Errorf("bad compression: %v", err)
	}
	if s.ModulesDir != "" {
		s.Compression, s.Modules = "zstd", []string{"not_a_module"}
		if _, err := Build(&buf, s); err == nil || !strings.Contains(err.Error(), "not_a_module not found") {
			t.Errorf("missing module: %v", err)
		}
	}
}

// TestShellUnderSecureBootOptIn: the opt-in is a file the init looks for,
// present only when asked for, and only with a shell.
func TestShellUnderSecureBootOptIn(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio not installed")
	}
	s := spec(t, "none")
	s.ModulesDir, s.Modules = "", nil
	s.Busybox = filepath.Join(t.TempDir(), "busybox")
	os.WriteFile(s.Busybox, []byte("#!fake busybox\n"), 0o755)
	var plain, optIn bytes.Buffer
	if _, err := Build(&plain, s); err != nil {
		t.Fatal(err)
	}
	s.AllowShellUnderSecureBoot = true
	if _, err := Build(&optIn, s); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(listing(t, plain.Bytes()), layout.ShellUnderSecureBoot) {
		t.Error("opt-in file present without the option")
	}
	if !strings.Contains(listing(t, optIn.Bytes()), layout.ShellUnderSecureBoot) {
		t.Error("opt-in file missing")
	}
	s.Busybox = ""
	if _, err := Build(&optIn, s); err == nil || !strings.Contains(err.Error(), "needs a shell") {
		t.Errorf("opt-in without a shell: %v", err)
	}
}

// TestInsecureAndSetupRootConf: the '?' opt-in and the setup-root
// configuration are files at the paths the init reads, present only when
// asked for; a configuration the init could not read is refused here.
func TestInsecureAndSetupRootConf(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio not installed")
	}
	s := spec(t, "none")
	s.ModulesDir, s.Modules = "", nil
	var plain, with bytes.Buffer
	if _, err := Build(&plain, s); err != nil {
		t.Fatal(err)
	}
	s.AllowInsecure, s.SetupRootConf = true, []byte("[etc]\nmount = \"transient\"\n")
	if _, err := Build(&with, s); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{layout.AllowInsecure, layout.SetupRootConf} {
		if strings.Contains(listing(t, plain.Bytes()), name) {
			t.Errorf("%s present without the option", name)
		}
		if !strings.Contains(listing(t, with.Bytes()), name) {
			t.Errorf("%s missing", name)
		}
	}
	s.SetupRootConf = []byte("[etc]\nmount = transient\n")
	if _, err := Build(&with, s); err == nil || !strings.Contains(err.Error(), "setup-root configuration: line 2") {
		t.Errorf("bad configuration: %v", err)
	}
}

// TestModuleRules checks the rules the init reads: filesystems always,
// efivarfs under UEFI, loop and dependencies not by themselves, drivers
// by the aliases kmod's modinfo (the oracle) reads from the module.
func TestModuleRules(t *testing.T) {
	s := spec(t, "none")
	if s.ModulesDir == "" {
		t.Skip("no kernel modules in .cache/debian (make test fetches them)")
	}
	var a bytes.Buffer
	if _, err := Build(&a, s); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cpio", "-i", "--quiet", "--to-stdout", path.Join(layout.ModulesDir, layout.LoadRules))
	cmd.Stdin = &a
	data, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio: %v", err)
	}
	mods, err := modload.ParseRules(data)
	if err != nil {
		t.Fatalf("%s: %v\n%s", layout.LoadRules, err, data)
	}
	got := map[string]modload.Module{}
	for _, m := range mods {
		got[m.File] = m
	}
	for file, when := range map[string]string{"erofs.ko": modload.Always, "overlay.ko": modload.Always, "efivarfs.ko": modload.EFI, "loop.ko": "", "virtio_blk.ko": "", "libcrc32c.ko": ""} {
		if got[file].When != when {
			t.Errorf("%s loads under %q, want %q\n%s", file, got[file].When, when, data)
		}
	}
	if d := got["erofs.ko"].Depends; len(d) != 1 || d[0] != "libcrc32c.ko" {
		t.Errorf("erofs.ko depends on %v, want [libcrc32c.ko]", d)
	}
	if len(got["loop.ko"].Aliases) != 0 || len(got["erofs.ko"].Aliases) != 0 {
		t.Errorf("devname:, char-major- or fs- aliases kept:\n%s", data)
	}
	if _, err := exec.LookPath("modinfo"); err != nil {
		t.Skip("modinfo (kmod) not installed")
	}
	files, _ := filepath.Glob(filepath.Join(s.ModulesDir, "kernel/drivers/block/virtio_blk.ko*"))
	if len(files) != 1 {
		t.Fatalf("virtio_blk in %s: %v", s.ModulesDir, files)
	}
	out, err := exec.Command("modinfo", "-F", "alias", files[0]).Output()
	if err != nil {
		t.Fatalf("modinfo %s: %v", files[0], err)
	}
	if want := strings.Fields(string(out)); strings.Join(got["virtio_blk.ko"].Aliases, " ") != strings.Join(want, " ") {
		t.Errorf("virtio_blk.ko aliases %v, modinfo says %v", got["virtio_blk.ko"].Aliases, want)
	}
}

func TestDeviceAliasesAndWhen(t *testing.T) {
	got := deviceAliases([]string{"fs-erofs", "devname:loop-control", "char-major-10-237", "block-major-7-*", "virtio:d00000002v*", "acpi*:MSFT0101:*", "dmi*:svnACME Inc:*", "pci:v[0-9*", "usb:v\u00e9*"})
	if want := "virtio:d00000002v* acpi*:MSFT0101:*"; strings.Join(got, " ") != want {
		t.Errorf("deviceAliases = %v, want %s", got, want)
	}
	for _, c := range []struct {
		name      string
		requested bool
		aliases   []string
		want      string
	}{
		{"erofs", true, nil, modload.Always},
		{"libcrc32c", false, nil, ""},
		{"efivarfs", true, nil, modload.EFI},
		{"loop", true, nil, ""},
		{"ahci", true, []string{"pci:v*d*sv*sd*bc01sc06i01*"}, ""},
	} {
		if got := loadsWhen(c.name, c.requested, c.aliases); got != c.want {
			t.Errorf("loadsWhen(%s, %v, %v) = %q, want %q", c.name, c.requested, c.aliases, got, c.want)
		}
	}
}
