//go:build qemu

package qemutests

import (
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
cfsboot pcr read --pcr 11,15 2>&1 | sed 's/^/CHECK pcr: /'
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
	return debian
}

func buildDebian(t testing.TB) (*DebianRoot, error) {
	out, err := exec.Command(filepath.Join(repoRoot, "qemu-tests", "debian-root.sh"), filepath.Join(repoRoot, ".cache", "debian-root")).Output()
	if err != nil {
		return nil, fmt.Errorf("debian-root.sh: %w", err)
	}
	dir := filepath.Join(fx.Dir, "debian")
	root := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	run(t, "tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf", strings.TrimSpace(string(out)), "-C", root)
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
			return nil, err
		}
		full := filepath.Join(root, p)
		if strings.HasSuffix(p, ".wants/cfsboot-check.service") {
			if err := os.Symlink("/etc/systemd/system/cfsboot-check.service", full); err != nil {
				return nil, err
			}
			continue
		}
		if err := os.WriteFile(full, []byte(content), 0o755); err != nil {
			return nil, err
		}
	}
	run(t, "cp", fx.CfsbootBin, filepath.Join(root, "usr/bin/cfsboot"))

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
	if d.Digest, _, err = st.Commit(tr, erofs.DefaultOptions()); err != nil {
		return nil, err
	}
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
		if strings.Contains(l, "CHECK analyze:") || strings.Contains(l, "CHECK pcr:") {
			t.Log(l)
		}
	}
}
