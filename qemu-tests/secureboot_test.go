//go:build qemu

package qemutests

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"debug/pe"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"

	"cfsboot/secureboot"
	"cfsboot/tpm"
	"cfsboot/uki"
)

const stubPath = repoRoot + "/.cache/debian/root/systemd-boot-efi/usr/lib/systemd/boot/efi/linuxx64.efi.stub"

// buildUKI makes an unsigned UKI of the VM kernel, the no-shell initrd and
// a command line.
func buildUKI(t *testing.T, cmdline string) []byte {
	t.Helper()
	return buildUKIWith(t, fx.InitrdNoShell, cmdline, nil)
}

// buildUKIWith makes an unsigned UKI with another initrd and, with pcrKey,
// signed PCR 11 policies for every bank.
func buildUKIWith(t *testing.T, initrdPath, cmdline string, pcrKey *rsa.PrivateKey) []byte {
	t.Helper()
	stub, err := os.ReadFile(stubPath)
	if err != nil {
		t.Skipf("needs Debian's systemd stub (make deps): %v", err)
	}
	kernel, err := os.ReadFile(fx.Kernel.Image)
	if err != nil {
		t.Fatal(err)
	}
	initrd, err := os.ReadFile(initrdPath)
	if err != nil {
		t.Fatal(err)
	}
	out, err := uki.Build(stub, uki.Parts{
		Linux: kernel, Initrd: initrd, Cmdline: []byte(consoleArgs + " " + cmdline),
		OSRelease: []byte("ID=cfsboot-test\nNAME=\"cfsboot test image\"\n"),
		PCRKey:    pcrKey, PCRBanks: []string{"sha1", "sha256", "sha384", "sha512"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// signSnakeoil signs with the key enrolled (as db) in OVMF's snakeoil VARS.
func signSnakeoil(t *testing.T, image []byte) []byte {
	t.Helper()
	keyPath := filepath.Join(t.TempDir(), "snakeoil.pem")
	run(t, "openssl", "rsa", "-passin", "pass:snakeoil", "-in", snakeoilKey, "-out", keyPath)
	key, err := secureboot.LoadPrivateKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := secureboot.LoadCertificate(snakeoilCert)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := uki.Sign(image, key, cert)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func writeEFI(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "uki.efi")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSecureBootSignedUKI: OVMF with the snakeoil keys boots our signed
// UKI; systemd-stub measures its sections, cfsboot-init verifies the root
// and adds the boot phases, and the booted system's PCR 11 equals our
// prediction from the UKI for enter-initrd:leave-initrd, in every bank;
// the UKI's .pcrsig holds a signed policy for exactly that value.
func TestSecureBootSignedUKI(t *testing.T) {
	t.Parallel()
	pcrKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// No rd.cfsboot.measure-phases: cfsboot-init must see systemd-stub's
	// mark itself (efivarfs is a module of the Debian cloud kernel, which
	// the initrd builder adds and the init loads before looking).
	image := signSnakeoil(t, buildUKIWith(t, fx.InitrdNoShell, cmdline(fx.Digest.String(), "rd.cfsboot.tpm=require"), pcrKey))
	vm := Boot(t, fx.Kernel, VMOptions{Disk: fx.Disk(t, "sealed"), TPM: true,
		UEFI: NewUEFI(t, ovmfVarsSnakeoil, writeEFI(t, image))})
	vm.WaitFor(`EFI stub: UEFI Secure Boot is enabled`)
	vm.WaitFor(`cfsboot: boot phases go to PCR 11: true`)
	vm.WaitFor(`cfsboot: composefs image ` + fx.Digest.String() + ` verified`)
	line := vm.WaitFor(`TESTINIT pcr read: `)
	vm.WaitFor(`TESTINIT done`)
	vm.WaitExit()

	var vals []struct {
		PCR   int    `json:"pcr"`
		Bank  string `json:"bank"`
		Value string `json:"value"`
	}
	if err := json.Unmarshal([]byte(line[strings.Index(line, "["):]), &vals); err != nil {
		t.Fatalf("pcr read output %q: %v", line, err)
	}
	sections, err := uki.MeasuredSections(bytes.NewReader(image))
	if err != nil {
		t.Fatal(err)
	}
	var pcrsig map[string][]struct {
		Policy string `json:"pol"`
	}
	signedPolicies := func(bank string) []string {
		var out []string
		for _, s := range pcrsig[bank] {
			out = append(out, s.Policy)
		}
		return out
	}
	p, err := pe.NewFile(bytes.NewReader(image))
	if err != nil {
		t.Fatal(err)
	}
	if data, err := p.Section(".pcrsig").Data(); err != nil || json.Unmarshal(bytes.TrimRight(data, "\x00"), &pcrsig) != nil {
		t.Fatalf(".pcrsig: %v %q", err, data)
	}
	n := 0
	for _, v := range vals {
		b, ok := tpm.BankByName(v.Bank)
		if v.PCR != tpm.PCR11 || !ok {
			continue
		}
		value, _ := hex.DecodeString(v.Value)
		if !slices.Contains(signedPolicies(v.Bank), hex.EncodeToString(uki.PolicyPCRDigest(b, tpm.PCR11, value))) {
			t.Errorf(".pcrsig has no %s policy for the booted PCR 11 %s", v.Bank, v.Value)
		}
		for _, p := range tpm.PredictPCR11(sections, []tpm.Bank{b}) {
			if p.Path == "enter-initrd:leave-initrd" {
				n++
				if v.Value != hex.EncodeToString(p.Value) {
					t.Errorf("PCR 11 %s = %s, predicted from the UKI %x", v.Bank, v.Value, p.Value)
				}
			}
		}
	}
	if n == 0 {
		t.Errorf("the booted system reported no PCR 11: %s", line)
	}
}

// TestSecureBootRefusesUnsignedUKI: the firmware refuses to start an
// unsigned UKI, and one changed by a byte after signing.
func TestSecureBootRefusesUnsignedUKI(t *testing.T) {
	t.Parallel()
	unsigned := buildUKI(t, cmdline(fx.Digest.String()))
	changed := signSnakeoil(t, unsigned)
	changed[bytes.Index(changed, []byte("console=ttyS0"))+8] = 'X' // "console=XtyS0": one byte of the signed command line
	for name, image := range map[string][]byte{"unsigned": unsigned, "changed": changed} {
		vm := Boot(t, fx.Kernel, VMOptions{Disk: fx.Disk(t, "sealed"), UEFI: NewUEFI(t, ovmfVarsSnakeoil, writeEFI(t, image))})
		vm.WaitFor(`Access Denied`)
		vm.Kill()
		if vm.Has(`EFI stub`) || vm.Has(`cfsboot: `) {
			t.Errorf("%s UKI: the kernel started", name)
		}
	}
}

// enrollInitrd is an initrd whose init (qemu-tests/enroll) enrolls the
// given variables' .auth payloads, carried in a second, uncompressed cpio
// archive appended to the first (the kernel unpacks both).
func enrollInitrd(t *testing.T, vars []secureboot.Variable) string {
	t.Helper()
	img := bytes.NewBuffer(HelperInitrd(t, fx.Kernel, "./qemu-tests/enroll", "efivarfs"))
	img.Write(make([]byte, (4-img.Len()%4)%4)) // the next archive starts 4-byte aligned
	w := cpio.Newc.Writer(img)
	for _, v := range vars {
		if err := w.WriteRecord(cpio.StaticFile(v.Name+".auth", string(v.Auth), 0o644)); err != nil {
			t.Fatal(err)
		}
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "initrd-enroll.img")
	if err := os.WriteFile(path, img.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSecureBootOwnKeys: a machine in setup mode (OVMF's plain VARS)
// enrolls freshly created keys through efivarfs (secureboot.Enroll, in the
// VM); after that the firmware is out of setup mode, a second enrollment
// is refused, the UKI signed with the user's db key boots with Secure Boot
// on, and one signed with the snakeoil key is refused.
func TestSecureBootOwnKeys(t *testing.T) {
	t.Parallel()
	keys, err := secureboot.CreateKeys(t.TempDir(), "cfsboot qemu")
	if err != nil {
		t.Fatal(err)
	}
	vars, err := keys.Variables(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	enroller := buildUKIWith(t, enrollInitrd(t, vars), "", nil)
	machine := NewUEFI(t, ovmfVarsSetup, writeEFI(t, enroller))
	vm := Boot(t, fx.Kernel, VMOptions{UEFI: machine})
	vm.WaitFor(`ENROLL before: setup mode true, secure boot false, 0 PK`)
	vm.WaitFor(`ENROLL enrolled PK: CN=cfsboot qemu PK owner ` + keys.Owner.String())
	vm.WaitFor(`ENROLL enrolled KEK: CN=cfsboot qemu KEK`)
	vm.WaitFor(`ENROLL enrolled db: CN=cfsboot qemu db`)
	vm.WaitFor(`ENROLL after: setup mode false`)
	vm.WaitFor(`ENROLL again: .*not in setup mode`)
	vm.WaitExit()
	if vm.Has(`ENROLL FAILED`) {
		t.Fatal("enrollment failed")
	}

	signed, err := uki.Sign(buildUKI(t, cmdline(fx.Digest.String())), keys.DB.Key, keys.DB.Cert)
	if err != nil {
		t.Fatal(err)
	}
	vm = Boot(t, fx.Kernel, VMOptions{Disk: fx.Disk(t, "sealed"), UEFI: machine.WithESP(t, writeEFI(t, signed))})
	vm.WaitFor(`EFI stub: UEFI Secure Boot is enabled`)
	vm.WaitFor(`cfsboot: composefs image ` + fx.Digest.String() + ` verified`)
	vm.WaitFor(`TESTINIT done`)
	vm.WaitExit()

	snakeoil := signSnakeoil(t, buildUKI(t, cmdline(fx.Digest.String())))
	vm = Boot(t, fx.Kernel, VMOptions{Disk: fx.Disk(t, "sealed"), UEFI: machine.WithESP(t, writeEFI(t, snakeoil))})
	vm.WaitFor(`Access Denied`)
	vm.Kill()
	if vm.Has(`EFI stub`) {
		t.Error("the snakeoil-signed UKI started on a machine with the user's keys")
	}
}

// TestSecureBootUKIBindsImage: a signed UKI names one image; a disk whose
// file under that name holds another image does not boot.
func TestSecureBootUKIBindsImage(t *testing.T) {
	t.Parallel()
	disk := fx.Disk(t, "sealed")
	a, b := fx.Digest.String(), fx.OtherDigest.String()
	run(t, "debugfs", "-w", "-R", "rm /composefs/images/"+a, disk)
	run(t, "debugfs", "-w", "-R", "ln /composefs/images/"+b+" /composefs/images/"+a, disk)
	image := signSnakeoil(t, buildUKI(t, cmdline(a)))
	vm := Boot(t, fx.Kernel, VMOptions{Disk: disk, UEFI: NewUEFI(t, ovmfVarsSnakeoil, writeEFI(t, image))})
	vm.WaitFor(`EFI stub: UEFI Secure Boot is enabled`)
	vm.WaitFor(`cfsboot: FAILED at stage verify: expected fs-verity digest sha256:` + a + ` \(composefs=` + a + `\), found sha256:` + b)
	vm.WaitFor(`cfsboot: powering off`)
	vm.WaitExit()
	// (expectFailure's "switching to" also matches the UEFI frame buffer console's line.)
	if vm.Has(`TESTINIT`) || vm.Has(`cfsboot: switching to`) {
		t.Error("the root of another image ran")
	}
}

// TestSecureBootIgnoresOutsideCmdline: the firmware starts the signed UKI
// with a command line of its own (another composefs=); under Secure Boot
// systemd-stub ignores it and boots the UKI's signed one. Without Secure
// Boot (setup-mode VARS) the same outside command line does reach the
// kernel, so the test sees it being given.
func TestSecureBootIgnoresOutsideCmdline(t *testing.T) {
	t.Parallel()
	image := writeEFI(t, signSnakeoil(t, buildUKI(t, cmdline(fx.Digest.String()))))
	outside := consoleArgs + " " + cmdline(fx.OtherDigest.String())

	insecure := NewUEFI(t, ovmfVarsSetup, image)
	vm := Boot(t, fx.Kernel, VMOptions{Disk: fx.Disk(t, "sealed"), UEFI: &UEFI{Vars: insecure.Vars, Image: image, LoadOptions: outside}})
	vm.WaitFor(`Kernel command line: .*composefs=` + fx.OtherDigest.String())
	vm.Kill()

	secure := NewUEFI(t, ovmfVarsSnakeoil, image)
	vm = Boot(t, fx.Kernel, VMOptions{Disk: fx.Disk(t, "sealed"), UEFI: &UEFI{Vars: secure.Vars, Image: image, LoadOptions: outside}})
	vm.WaitFor(`EFI stub: UEFI Secure Boot is enabled`)
	vm.WaitFor(`cfsboot: composefs image ` + fx.Digest.String() + ` verified`)
	vm.WaitFor(`TESTINIT done`)
	vm.WaitExit()
	if vm.Has(fx.OtherDigest.String()) {
		t.Error("the command line from outside the UKI reached the kernel")
	}
}
