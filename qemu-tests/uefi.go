//go:build qemu

package qemutests

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// OVMF from Debian's ovmf package: Secure Boot firmware, its VARS with the
// snakeoil keys enrolled (PK, KEK, db) or none (setup mode), and the
// snakeoil signing key (encrypted, password "snakeoil").
const (
	ovmfCodeSecboot  = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
	ovmfVarsSnakeoil = "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd"
	ovmfVarsSetup    = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	snakeoilKey      = "/usr/share/ovmf/PkKek-1-snakeoil.key"
	snakeoilCert     = "/usr/share/ovmf/PkKek-1-snakeoil.pem"
)

// UEFI boots a VM through OVMF with Secure Boot (SMM, secure pflash) from
// an ESP image, instead of loading a kernel and initrd directly.
type UEFI struct {
	Vars string // a private copy of an OVMF VARS image (written by the firmware)
	ESP  string // raw FAT image holding EFI/BOOT/BOOTX64.EFI
	// Image, when set, is handed to OVMF with QEMU's -kernel instead: the
	// firmware loads it (checking its signature) and starts it with
	// LoadOptions as its command line, as a boot entry with arguments would.
	Image, LoadOptions string
}

func (u *UEFI) qemuArgs() []string {
	args := []string{
		"-machine", "smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + ovmfCodeSecboot,
		"-drive", "if=pflash,format=raw,unit=1,file=" + u.Vars,
		// Without a NIC a refused image does not fall through to PXE.
		"-nic", "none",
	}
	if u.ESP != "" {
		args = append(args, "-drive", "if=ide,format=raw,file="+u.ESP)
	}
	if u.Image != "" {
		args = append(args, "-kernel", u.Image, "-append", u.LoadOptions)
	}
	return args
}

// NewUEFI makes an ESP holding efi as the default boot loader and a
// private copy of the VARS image vars; it skips the test without OVMF.
func NewUEFI(t testing.TB, vars, efi string) *UEFI {
	t.Helper()
	for _, f := range []string{ovmfCodeSecboot, vars} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("needs OVMF (package ovmf): %v", err)
		}
	}
	u := &UEFI{Vars: filepath.Join(t.TempDir(), "vars.fd")}
	run(t, "cp", vars, u.Vars)
	return u.WithESP(t, efi)
}

// WithESP keeps the firmware's variables (a machine that reboots) and
// boots another image.
func (u *UEFI) WithESP(t testing.TB, efi string) *UEFI {
	t.Helper()
	info, err := os.Stat(efi)
	if err != nil {
		t.Fatal(err)
	}
	esp := filepath.Join(t.TempDir(), "esp.img")
	run(t, "mkfs.vfat", "-C", esp, strconv.FormatInt(info.Size()/1024+8192, 10))
	run(t, "mmd", "-i", esp, "::/EFI", "::/EFI/BOOT")
	run(t, "mcopy", "-i", esp, efi, "::/EFI/BOOT/BOOTX64.EFI")
	return &UEFI{Vars: u.Vars, ESP: esp}
}
