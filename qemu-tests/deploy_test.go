//go:build qemu

package qemutests

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"cfsboot/deploy"
	"cfsboot/disk"
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
	return startQEMU(t,
		"-drive", "if=pflash,format=raw,unit=0,file=/usr/share/OVMF/OVMF_CODE_4M.fd,readonly=on",
		"-drive", "if=pflash,format=raw,unit=1,file="+vars,
		"-drive", "file="+diskPath+",if=virtio,format=raw,cache=unsafe")
}

// startQEMU starts a TCG VM with args added to the usual machine; unlike
// Boot it lets the VM reboot (boot counting needs that).
func startQEMU(t *testing.T, args ...string) *VM {
	t.Helper()
	vm := &VM{t: t, exited: make(chan struct{})}
	vm.start(append(append(slices.Clone(machineArgs), "-nic", "none"), args...))
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

// countingDisk is a disk installed with deployment A through install and
// deploy, booted by systemd-boot from OVMF; UKIs are built by ukify with
// the bootcount init, and the one for failing fails its boot.
type countingDisk struct {
	path     string
	res      *install.Result
	esp      deploy.ESP
	buildUKI deploy.BuildUKI
	vars     string
	dir      string
	kernel   Kernel
}

func newCountingDisk(t *testing.T, failing verity.Digest) *countingDisk {
	t.Helper()
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
	initrd := HelperInitrdFile(t, k, "./qemu-tests/bootcount", "efivarfs")
	osrel := filepath.Join(dir, "os-release")
	// Equal ID and VERSION_ID in every UKI: systemd-boot then orders by entry id.
	os.WriteFile(osrel, []byte("ID=cfsboot-test\nVERSION_ID=1\nNAME=\"cfsboot boot counting test\"\n"), 0o644)

	c := &countingDisk{dir: dir, kernel: k, path: filepath.Join(dir, "disk.img"), vars: filepath.Join(dir, "vars.fd")}
	c.buildUKI = func(ctx context.Context, d verity.Digest, cmdline, out string) error {
		cmdline = consoleArgs + " panic=1 " + cmdline
		if d == failing {
			cmdline += " bootcount.fail"
		}
		cmd := exec.CommandContext(ctx, "/usr/bin/python3", ukify, "build", "--linux", k.Image, "--initrd", initrd,
			"--cmdline", cmdline, "--os-release", "@"+osrel, "--stub", filepath.Join(sdboot, "linuxx64.efi.stub"), "--output", out)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("ukify: %v\n%s", err, b)
		}
		return nil
	}
	c.res, err = install.Install(context.Background(), install.Options{Image: "A", Disk: c.path, Size: 256 << 20, ESPSize: 64 << 20, Timeout: 0}, install.Seams{
		Import: func(_ context.Context, ref, store string) (verity.Digest, string, error) {
			return verity.ComputeBytes([]byte(ref)), "cfsboot-test", nil
		},
		BuildUKI:   c.buildUKI,
		Bootloader: func(context.Context) (string, error) { return filepath.Join(sdboot, "systemd-bootx64.efi"), nil },
		Seal:       func(context.Context, string, disk.Partition) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	c.esp = deploy.ImageESP{Image: c.path, Offset: c.res.ESP.Offset()}
	run(t, "cp", "/usr/share/OVMF/OVMF_VARS_4M.fd", c.vars)
	return c
}

func (c *countingDisk) manager() *deploy.Manager {
	return &deploy.Manager{ESP: c.esp, OS: c.res.OS, Images: memImages{c.res.Digest: true}, UKI: c.buildUKI,
		Cmdline: "root=PARTUUID=" + c.res.Root.UUID.String()}
}

// bless does what systemd-bless-boot does after a good boot: drop the counter.
func (c *countingDisk) bless(t *testing.T, name string) string {
	t.Helper()
	e, err := deploy.ParseEntry(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.esp.Rename(deploy.EntryDir+"/"+name, deploy.EntryDir+"/"+e.ID()); err != nil {
		t.Fatal(err)
	}
	return e.ID()
}

// TestBootCounting installs A, boots it through systemd-boot, deploys B
// whose boot fails, and checks that systemd-boot tries B three times and
// then boots A by itself: the entry names and loader.conf that deploy
// writes make systemd-boot fall back with no human step.
func TestBootCounting(t *testing.T) {
	t.Parallel()
	bad := verity.ComputeBytes([]byte("B"))
	c := newCountingDisk(t, bad)
	res, esp, diskPath, vars, m := c.res, c.esp, c.path, c.vars, c.manager()

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
	c.bless(t, "cfsboot-test-1-"+res.Digest.String()[:12]+"+2-1.efi")

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

// TestDeployPowerCut deploys B onto a disk with A installed from inside a
// VM (the ESP mounted with the kernel's vfat) and pulls the plug (kills
// QEMU) at random moments of the deploy. Every resulting disk has A or B
// as its default with the complete UKI, and systemd-boot boots it.
func TestDeployPowerCut(t *testing.T) {
	t.Parallel()
	c := newCountingDisk(t, verity.Digest{})
	idA := c.bless(t, c.res.Entry)
	ukiA, err := c.esp.ReadFile(deploy.EntryDir + "/" + idA)
	if err != nil {
		t.Fatal(err)
	}
	b := verity.ComputeBytes([]byte("B"))
	idB := "cfsboot-test-2-" + b.String()[:12] + ".efi"
	ukiBPath := filepath.Join(c.dir, "uki-b.efi")
	if err := c.buildUKI(context.Background(), b, "composefs="+b.String()+" root=PARTUUID="+c.res.Root.UUID.String(), ukiBPath); err != nil {
		t.Fatal(err)
	}
	ukiB, _ := os.ReadFile(ukiBPath)
	// A block device is whole sectors: pad the UKI for the second disk.
	padded := filepath.Join(c.dir, "uki-b.disk")
	os.WriteFile(padded, append(append([]byte(nil), ukiB...), make([]byte, 512-len(ukiB)%512)...), 0o644)

	initrd := HelperInitrdFile(t, c.kernel, "./qemu-tests/deployvm", "virtio_blk", "vfat", "nls_cp437", "nls_ascii")
	deployVM := func(diskPath string) *VM {
		return startQEMU(t, "-kernel", c.kernel.Image, "-initrd", initrd, "-no-reboot",
			"-append", fmt.Sprintf(consoleArgs+" deployvm.esp=PARTUUID=%s deployvm.ref=B deployvm.known=A deployvm.ukisize=%d", c.res.ESP.UUID, len(ukiB)),
			"-drive", "file="+diskPath+",if=virtio,format=raw",
			"-drive", "file="+padded+",if=virtio,format=raw,readonly=on")
	}
	copyDisk := func(name string) string {
		p := filepath.Join(c.dir, name)
		run(t, "cp", "--sparse=always", c.path, p)
		return p
	}

	// An undisturbed deploy, timed, to spread the cuts over it.
	whole := copyDisk("whole.img")
	vm := deployVM(whole)
	vm.WaitFor(`DEPLOYVM deploying`)
	start := time.Now()
	vm.WaitFor(`DEPLOYVM done ` + regexp.QuoteMeta(strings.TrimSuffix(idB, ".efi")+"+3.efi"))
	span := time.Since(start)
	vm.WaitExit()
	t.Logf("an undisturbed deploy in the VM takes %v", span)

	seen := map[string]int{}
	deadline := time.Now().Add(6 * time.Minute)
	for i := 0; i < 12 && time.Now().Before(deadline); i++ {
		p := copyDisk(fmt.Sprintf("cut%d.img", i))
		vm := deployVM(p)
		vm.WaitFor(`DEPLOYVM deploying`)
		// Up to half a deploy past its end: some cuts come after it.
		time.Sleep(time.Duration(rand.Int64N(int64(span) * 3 / 2)))
		vm.Kill()
		<-vm.exited

		esp := deploy.ImageESP{Image: p, Offset: c.res.ESP.Offset()}
		m := &deploy.Manager{ESP: esp, OS: c.res.OS}
		st, err := m.Status(deploy.Booted{})
		if err != nil {
			t.Fatalf("cut %d: %v", i, err)
		}
		want := map[string][]byte{idA: ukiA, idB: ukiB}[st.Default]
		if want == nil {
			t.Fatalf("cut %d: default %q is neither A nor B: %+v", i, st.Default, st)
		}
		got, err := esp.ReadFile(deploy.EntryDir + "/" + st.Entries[0].File)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("cut %d: the default %s is not the complete UKI (%d of %d bytes, %v)", i, st.Entries[0].File, len(got), len(want), err)
		}
		seen[st.Default]++
		t.Logf("cut %d: %s", i, espNames(t, esp))
		// The firmware and systemd-boot agree: the default boots.
		if seen[st.Default] == 1 {
			vars := filepath.Join(c.dir, fmt.Sprintf("vars%d.fd", i))
			run(t, "cp", "/usr/share/OVMF/OVMF_VARS_4M.fd", vars)
			boot := bootFirmware(t, p, vars)
			if sel := boot.WaitFor(`BOOTCOUNT LoaderEntrySelected: `); !strings.HasSuffix(sel, st.Default) {
				t.Errorf("cut %d: systemd-boot booted %q, the default is %s", i, sel, st.Default)
			}
			boot.WaitExit()
		}
	}
	t.Logf("defaults after the cuts: %v", seen)
}
