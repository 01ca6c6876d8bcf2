//go:build qemu

package qemutests

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"cfsboot/gen/erofs"
	"cfsboot/gen/source"
	"cfsboot/gen/store"
	"cfsboot/tpm"
	"cfsboot/uki"
	"cfsboot/verity"
)

// DebianRoot is a real operating system as a composefs image: Debian
// trixie with systemd (qemu-tests/debian-root.sh), the VM kernel's modules
// under /usr/lib/modules as a bootable container carries them, and a
// check service that reports on the console and powers off.
type DebianRoot struct {
	Digest verity.Digest
	disk   string // provisioned (sealed) root disk
}

var (
	debianOnce sync.Once
	debian     *DebianRoot
	debianErr  error
)

// checkScript runs in the booted Debian once boot has finished. Type=simple
// in its unit lets `is-system-running --wait` return: a oneshot's start job
// would keep the boot unfinished.
const checkScript = `#!/bin/sh
echo "CHECK state: $(systemctl is-system-running --wait)"
systemctl --failed --no-legend --plain | sed 's/^/CHECK failed unit: /'
echo "CHECK root: $(findmnt -n -o SOURCE,FSTYPE,OPTIONS /)"
systemd-analyze time 2>&1 | sed 's/^/CHECK analyze: /'
cfsboot pcr read --pcr 11,15 --json | tr -d ' \n' | sed 's/^/CHECK pcr json: /'; echo
cfsboot pcr log --pcr 15 >/run/pcrlog 2>&1; status=$?
sed 's/^/CHECK log: /' /run/pcrlog
echo "CHECK log status: $status"
journalctl -b -o cat -t systemd-pcrextend 2>&1 | sed 's/^/CHECK pcrextend: /'
for f in /run/systemd/tpm2-pcr-signature.json /run/systemd/tpm2-pcr-public-key.pem; do
	[ -s "$f" ] && echo "CHECK stub file: $f"
done
echo "CHECK done"
systemctl poweroff
`

const checkUnit = `[Unit]
Description=cfsboot QEMU test report
After=multi-user.target

[Service]
Type=simple
ExecStart=/usr/local/sbin/cfsboot-check
StandardOutput=tty
TTYPath=/dev/ttyS0

[Install]
WantedBy=multi-user.target
`

// Debian builds (once per test run) the Debian root image and its sealed disk.
func Debian(t testing.TB) *DebianRoot {
	t.Helper()
	debianOnce.Do(func() { debian, debianErr = buildDebian(t) })
	if debianErr != nil {
		t.Fatalf("Debian root: %v", debianErr)
	}
	if debian == nil { // buildDebian stopped the test that ran it
		t.Fatal("Debian root: building it failed in another test")
	}
	return debian
}

// debianTarball builds (or finds cached) the mmdebstrap root tarball.
func debianTarball() (string, error) {
	out, err := exec.Command(filepath.Join(repoRoot, "qemu-tests", "debian-root.sh"), filepath.Join(repoRoot, ".cache", "debian-root")).Output()
	if err != nil {
		return "", fmt.Errorf("debian-root.sh: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// addDebianExtras writes into root what the tests add to Debian: the VM
// kernel and its modules where a bootable container carries them, the
// check service, a hostname, an empty machine-id and the cfsboot CLI.
func addDebianExtras(t testing.TB, root string) error {
	version := filepath.Base(fx.Kernel.Modules)
	mods := filepath.Join(root, "usr/lib/modules")
	os.MkdirAll(mods, 0o755)
	run(t, "cp", "-a", fx.Kernel.Modules, mods)
	run(t, "cp", fx.Kernel.Image, filepath.Join(mods, version, "vmlinuz"))
	files := map[string]string{
		"usr/local/sbin/cfsboot-check":             checkScript,
		"etc/systemd/system/cfsboot-check.service": checkUnit,
		"etc/hostname":   "cfsboot-debian\n",
		"etc/machine-id": "", // generated at first boot
		"etc/systemd/system/multi-user.target.wants/cfsboot-check.service": "",
	}
	for p, content := range files {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			return err
		}
		full := filepath.Join(root, p)
		if strings.HasSuffix(p, ".wants/cfsboot-check.service") {
			if err := os.Symlink("/etc/systemd/system/cfsboot-check.service", full); err != nil {
				return err
			}
			continue
		}
		if err := os.WriteFile(full, []byte(content), 0o755); err != nil {
			return err
		}
	}
	os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755)
	run(t, "cp", fx.CfsbootBin, filepath.Join(root, "usr/bin/cfsboot"))
	return nil
}

func buildDebian(t testing.TB) (*DebianRoot, error) {
	tarball, err := debianTarball()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(fx.Dir, "debian")
	root := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	run(t, "tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", tarball, "-C", root)
	if err := addDebianExtras(t, root); err != nil {
		return nil, err
	}

	staging := filepath.Join(dir, "staging")
	st, err := store.Open(filepath.Join(staging, "provision"))
	if err != nil {
		return nil, err
	}
	tr, err := source.Dir(root, source.Options{})
	if err != nil {
		return nil, err
	}
	d := &DebianRoot{disk: filepath.Join(dir, "disk.img")}
	sum, _, err := st.Commit(tr, erofs.DefaultOptions())
	if err != nil {
		return nil, err
	}
	d.Digest, _ = sum.Digest()
	if err := fx.provisionDisk(t, staging, d.disk, "1G", ""); err != nil {
		return nil, err
	}
	return d, nil
}

// Disk returns a private copy of the sealed Debian disk.
func (d *DebianRoot) Disk(t testing.TB) string {
	p := filepath.Join(t.TempDir(), "disk.img")
	run(t, "cp", "--sparse=always", d.disk, p)
	return p
}

// TestDebianBoot boots a real systemd operating system through cfsboot-init:
// verified, measured, and running multi-user.target.
func TestDebianBoot(t *testing.T) {
	t.Parallel()
	d := Debian(t)
	vm := Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdNoShell, Disk: d.Disk(t), TPM: true,
		Append: cmdline(d.Digest.String())})
	vm.WaitFor(`cfsboot: composefs image ` + d.Digest.String() + ` verified`)
	state := vm.WaitFor(`CHECK state: `)
	root := vm.WaitFor(`CHECK root: `)
	vm.WaitFor(`CHECK done`)
	vm.WaitExit()
	var failed []string
	for _, l := range vm.Lines() {
		if _, unit, ok := strings.Cut(l, "CHECK failed unit: "); ok {
			failed = append(failed, unit)
		}
	}
	if !strings.HasSuffix(state, "running") {
		t.Errorf("systemd says %q; failed units: %v", state, failed)
	}
	for _, want := range []string{"composefs", "overlay", "verity=require"} {
		if !strings.Contains(root, want) {
			t.Errorf("root mount %q lacks %s", root, want)
		}
	}
	for _, l := range vm.Lines() {
		if strings.Contains(l, "CHECK analyze:") {
			t.Log(l)
		}
	}
}

// TestDebianSecureBoot is the whole chain: OVMF with Secure Boot verifies
// the signed UKI; systemd-stub measures it and hands over the PCR
// signature; cfsboot-init verifies and measures the Debian root; systemd
// measures its own phases (sysinit, ready) after ours. PCR 11 in the running
// system equals the prediction from the UKI for the whole path, and the
// measurement log replays to the TPM.
func TestDebianSecureBoot(t *testing.T) {
	t.Parallel()
	d := Debian(t)
	pcrKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	image := signSnakeoil(t, buildUKIWith(t, fx.InitrdNoShell, cmdline(d.Digest.String(), "rd.cfsboot.tpm=require"), pcrKey))
	vm := Boot(t, fx.Kernel, VMOptions{Disk: d.Disk(t), TPM: true, UEFI: NewUEFI(t, ovmfVarsSnakeoil, writeEFI(t, image))})
	vm.WaitFor(`EFI stub: UEFI Secure Boot is enabled`)
	vm.WaitFor(`cfsboot: boot phases go to PCR 11: true`)
	vm.WaitFor(`cfsboot: composefs image ` + d.Digest.String() + ` verified`)
	state := vm.WaitFor(`CHECK state: `)
	pcrs := vm.WaitFor(`CHECK pcr json: `)
	vm.WaitFor(`CHECK done`)
	vm.WaitExit()
	if !strings.HasSuffix(state, "running") {
		t.Errorf("systemd says %q", state)
	}
	// PCR 11 starts with systemd-stub's events, which are in the firmware's
	// log, not in /run's: it is checked against the prediction below.
	for _, want := range []string{
		`CHECK log: PCR 15 sha256 .* 2 event\(s\) .* matches the TPM`,
		`CHECK log status: 0`,
		`CHECK pcrextend: Extended PCR index 15 with 'machine-id:`,
		`CHECK pcrextend: .*sysinit`,
		`CHECK pcrextend: .*ready`,
		`CHECK stub file: /run/systemd/tpm2-pcr-signature.json`,
		`CHECK stub file: /run/systemd/tpm2-pcr-public-key.pem`,
	} {
		if !vm.Has(want) {
			t.Errorf("the booted system did not report /%s/", want)
		}
	}
	var vals []struct {
		PCR   int    `json:"pcr"`
		Bank  string `json:"bank"`
		Value string `json:"value"`
	}
	if err := json.Unmarshal([]byte(pcrs[strings.Index(pcrs, "["):]), &vals); err != nil {
		t.Fatalf("pcr read output %q: %v", pcrs, err)
	}
	sections, err := uki.MeasuredSections(bytes.NewReader(image))
	if err != nil {
		t.Fatal(err)
	}
	report := []string{fmt.Sprintf("cfsboot demo: Debian trixie with systemd as composefs image %s, booted by OVMF with Secure Boot through a signed UKI, measured into swtpm", d.Digest)}
	for _, l := range vm.Lines() {
		if strings.Contains(l, "Secure Boot is enabled") || strings.HasPrefix(l, "cfsboot: ") || strings.Contains(l, "CHECK ") && !strings.Contains(l, "CHECK pcr json") {
			report = append(report, "  "+l[strings.Index(l, strings.Fields(l)[0]):])
		}
	}
	report = append(report, "PCR 11 after enter-initrd:leave-initrd:sysinit:ready, predicted from the UKI (cfsboot pcr predict --uki) and read in the running system:")
	n := 0
	for _, v := range vals {
		b, ok := tpm.BankByName(v.Bank)
		if v.PCR != tpm.PCR11 || !ok {
			continue
		}
		for _, p := range tpm.PredictPCR11(sections, []tpm.Bank{b}) {
			if p.Path == "enter-initrd:leave-initrd:sysinit:ready" {
				n++
				report = append(report, fmt.Sprintf("  %-7s predicted %x\n          booted    %s", v.Bank, p.Value, v.Value))
				if v.Value != hex.EncodeToString(p.Value) {
					t.Errorf("PCR 11 %s = %s in the running system, predicted %x", v.Bank, v.Value, p.Value)
				}
			}
		}
	}
	if n != 4 {
		t.Errorf("compared %d banks of PCR 11: %s", n, pcrs)
	}
	t.Log("\n" + strings.Join(report, "\n"))
}
