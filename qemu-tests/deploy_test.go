//go:build qemu

package qemutests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"cfsboot/deploy"
	"cfsboot/disk"
	"cfsboot/initramfs/build"
	"cfsboot/install"
	"cfsboot/verity"
)

// memImages is the image store seam of the boot-counting test: it only
// names images (the UKIs boot no composefs root).
type memImages map[verity.Digest]bool

func (m memImages) Add(_ context.Context, ref string) (verity.Digest, error) {
	d := verity.ComputeBytes([]byte(ref))
	m[d] = true
	return d, nil
}
func (m memImages) List() ([]verity.Digest, error) {
	var ds []verity.Digest
	for d := range m {
		ds = append(ds, d)
	}
	return ds, nil
}
func (m memImages) Remove(d verity.Digest) error { delete(m, d); return nil }
func (m memImages) GC() error                    { return nil }

// bootFirmware boots the disk through OVMF (no Secure Boot): the firmware
// starts EFI/BOOT/BOOTX64.EFI (systemd-boot), which picks and counts the
// entry. Reboots stay in the same QEMU; it exits at power off.
func bootFirmware(t *testing.T, diskPath, vars string) *VM {
	t.Helper()
	vm := &VM{t: t, exited: make(chan struct{})}
	vm.qemu = exec.Command("qemu-system-x86_64",
		"-machine", "q35", "-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "1",
		"-display", "none", "-monitor", "none", "-serial", "stdio", "-nic", "none",
		"-drive", "if=pflash,format=raw,unit=0,file=/usr/share/OVMF/OVMF_CODE_4M.fd,readonly=on",
		"-drive", "if=pflash,format=raw,unit=1,file="+vars,
		"-drive", "file="+diskPath+",if=virtio,format=raw,cache=unsafe")
	stdout, err := vm.qemu.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	vm.qemu.Stderr = vm.qemu.Stdout
	if vm.stdin, err = vm.qemu.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(repoRoot, ".cache", "qemu-logs"), 0o755)
	vm.logPath = filepath.Join(repoRoot, ".cache", "qemu-logs", logName(t.Name()))
	logFile, err := os.Create(vm.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := vm.qemu.Start(); err != nil {
		t.Fatalf("qemu: %v", err)
	}
	vm.console = NewConsole(stdout, logFile)
	go func() {
		<-vm.console.Done()
		logFile.Close()
		vm.qemu.Wait()
		close(vm.exited)
	}()
	t.Cleanup(vm.Kill)
	return vm
}

func espNames(t *testing.T, esp deploy.ESP) string {
	t.Helper()
	names, err := esp.List(deploy.EntryDir)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(names, " ")
}

// TestBootCounting installs A, boots it through systemd-boot, deploys B
// whose boot fails, and checks that systemd-boot tries B three times and
// then boots A by itself: the entry names and loader.conf that deploy
// writes make systemd-boot fall back with no human step.
func TestBootCounting(t *testing.T) {
	k, err := FetchKernel()
	if err != nil {
		t.Fatal(err)
	}
	// systemd-boot and its stub, and ukify as an independent UKI builder
	// (trixie's, run by Debian 12's python3 with python3-pefile).
	cache := filepath.Join(repoRoot, ".cache", "debian")
	run(t, filepath.Join(repoRoot, "qemu-tests", "fetch-debs.sh"), cache, "systemd-boot-efi$", "systemd-ukify$")
	sdboot := filepath.Join(cache, "root", "systemd-boot-efi", "usr", "lib", "systemd", "boot", "efi")
	ukify := filepath.Join(cache, "root", "systemd-ukify", "usr", "bin", "ukify")
	if out, err := exec.Command("/usr/bin/python3", "-c", "import pefile").CombinedOutput(); err != nil {
		t.Fatalf("ukify needs python3-pefile (Makefile APT_PACKAGES): %v %s", err, out)
	}
	dir := t.TempDir()
	init := filepath.Join(dir, "bootcount")
	if err := BuildStatic("./qemu-tests/bootcount", init); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(dir, "initrd.img")
	var buf bytes.Buffer
	if _, err := build.Build(&buf, build.Spec{Init: init, ModulesDir: k.Modules, Modules: []string{"efivarfs"}}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(initrd, buf.Bytes(), 0o644)
	osrel := filepath.Join(dir, "os-release")
	// Equal ID and VERSION_ID in every UKI: systemd-boot then orders by entry id.
	os.WriteFile(osrel, []byte("ID=cfsboot-test\nVERSION_ID=1\nNAME=\"cfsboot boot counting test\"\n"), 0o644)

	bad := verity.ComputeBytes([]byte("B"))
	buildUKI := func(ctx context.Context, d verity.Digest, cmdline, out string) error {
		cmdline = "console=ttyS0 panic=1 " + cmdline
		if d == bad {
			cmdline += " bootcount.fail"
		}
		c := exec.CommandContext(ctx, "/usr/bin/python3", ukify, "build", "--linux", k.Image, "--initrd", initrd,
			"--cmdline", cmdline, "--os-release", "@"+osrel, "--stub", filepath.Join(sdboot, "linuxx64.efi.stub"), "--output", out)
		if b, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("ukify: %v\n%s", err, b)
		}
		return nil
	}
	diskPath := filepath.Join(dir, "disk.img")
	res, err := install.Install(context.Background(), install.Options{Image: "A", Disk: diskPath, Size: 256 << 20, ESPSize: 64 << 20, Timeout: 0}, install.Seams{
		Import: func(_ context.Context, ref, store string) (verity.Digest, string, error) {
			return verity.ComputeBytes([]byte(ref)), "cfsboot-test", nil
		},
		BuildUKI:   buildUKI,
		Bootloader: func(context.Context) (string, error) { return filepath.Join(sdboot, "systemd-bootx64.efi"), nil },
		Seal:       func(context.Context, string, disk.Partition) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	esp := deploy.ImageESP{Image: diskPath, Offset: res.ESP.Offset()}
	images := memImages{res.Digest: true}
	m := &deploy.Manager{ESP: esp, OS: res.OS, Images: images, UKI: buildUKI, Cmdline: "root=PARTUUID=" + res.Root.UUID.String()}
	vars := filepath.Join(dir, "vars.fd")
	run(t, "cp", "/usr/share/OVMF/OVMF_VARS_4M.fd", vars)

	// Boot 1: A, counted (+3 -> +2-1 by systemd-boot before it starts it).
	vm := bootFirmware(t, diskPath, vars)
	vm.WaitFor(`BOOTCOUNT cmdline: .*composefs=` + res.Digest.String())
	sel := vm.WaitFor(`BOOTCOUNT LoaderEntrySelected: `)
	idA := "cfsboot-test-1-" + res.Digest.String()[:12] + ".efi"
	if !strings.HasSuffix(sel, idA) {
		t.Errorf("LoaderEntrySelected line %q, want the id %s (the name without counter)", sel, idA)
	}
	vm.WaitFor(`BOOTCOUNT LoaderBootCountPath: .*\+2-1\.efi`)
	vm.WaitExit()
	if names := espNames(t, esp); names != "cfsboot-test-1-"+res.Digest.String()[:12]+"+2-1.efi" {
		t.Fatalf("after boot 1 the ESP has %q", names)
	}
	// What systemd-bless-boot does after a good boot: drop the counter.
	if err := esp.Rename(deploy.EntryDir+"/cfsboot-test-1-"+res.Digest.String()[:12]+"+2-1.efi", deploy.EntryDir+"/"+idA); err != nil {
		t.Fatal(err)
	}

	// Deploy B, whose boot fails: three tries, then systemd-boot boots A.
	if _, err := m.Deploy(context.Background(), "B", 2); err != nil {
		t.Fatal(err)
	}
	st, err := m.Status(deploy.Booted{Entry: idA})
	if err != nil {
		t.Fatal(err)
	}
	if st.Default != "cfsboot-test-2-"+bad.String()[:12]+".efi" || st.Rollback != idA {
		t.Fatalf("after deploying B: %+v", st)
	}
	start := time.Now()
	vm = bootFirmware(t, diskPath, vars)
	for i := 1; i <= 3; i++ {
		vm.WaitFor(`BOOTCOUNT cmdline: .*composefs=` + bad.String())
		vm.WaitFor(`BOOTCOUNT failing`)
	}
	vm.WaitFor(`BOOTCOUNT cmdline: .*composefs=` + res.Digest.String())
	sel = vm.WaitFor(`BOOTCOUNT LoaderEntrySelected: `)
	vm.WaitExit()
	t.Logf("three failed boots of B and the fallback to A took %v", time.Since(start))
	if !strings.HasSuffix(sel, idA) {
		t.Errorf("after B failed, LoaderEntrySelected %q, want %s", sel, idA)
	}
	if n := len(regexp.MustCompile(`BOOTCOUNT failing`).FindAllString(strings.Join(vm.Lines(), "\n"), -1)); n != 3 {
		t.Errorf("B was tried %d times, want 3", n)
	}
	st, err = m.Status(deploy.Booted{Entry: idA})
	if err != nil {
		t.Fatal(err)
	}
	if st.Default != idA || !st.BootedBlessed || len(st.Entries) != 2 || !st.Entries[1].Bad || *st.Entries[1].TriesLeft != 0 || st.Entries[1].TriesDone != 3 {
		t.Errorf("after the fallback: %+v (entries %q)", st, espNames(t, esp))
	}
}
