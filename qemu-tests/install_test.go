//go:build qemu

package qemutests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"cfsboot/secureboot"
)

// installCheckScript replaces the Debian check service's script in the
// installed image: it reports the deployments as `cfsboot status` sees
// them from inside, with the ESP mounted at /efi by fstab.
const installCheckScript = `#!/bin/sh
echo "CHECK state: $(systemctl is-system-running --wait)"
systemctl --failed --no-legend --plain | sed 's/^/CHECK failed unit: /'
echo "CHECK root: $(findmnt -n -o SOURCE,FSTYPE,OPTIONS /)"
echo "CHECK esp: $(findmnt -n -o SOURCE,FSTYPE /efi)"
echo "CHECK status json: $(cfsboot status --json 2>&1 | tr -d '\n')"
cfsboot status 2>&1 | sed 's/^/CHECK status: /'
if [ -b /dev/vdb ]; then
	mkdir -p /run/next && mount -o ro /dev/vdb /run/next
	cfsboot deploy --keys /run/next/keys --stub /run/next/linuxx64.efi.stub oci:/run/next/layout:next >/run/deploy.log 2>&1
	echo "CHECK deploy exit: $?"
	sed 's/^/CHECK deploy: /' /run/deploy.log
	echo "CHECK status after deploy json: $(cfsboot status --json 2>&1 | tr -d '\n')"
	# Tamper with the new image: its next boots fail verification.
	b=$(sed -n 's/^deployed \([0-9a-f]*\) as .*/\1/p' /run/deploy.log)
	for r in /sysroot /run/cfsboot/sysroot; do [ -d $r/composefs/images ] && s=$r/composefs/images && mount -o remount,bind,rw $r; done
	if [ -n "$b" ] && rm "$s/$b" && echo tampered >"$s/$b"; then echo "CHECK tampered: $s/$b"; fi
fi
echo "CHECK done"
systemctl poweroff
`

// enrolledMachine is OVMF whose Secure Boot variables hold the user's keys
// from `cfsboot keys create`, enrolled in setup mode by the enroll init.
func enrolledMachine(t *testing.T, keysDir string) *UEFI {
	t.Helper()
	keys, err := secureboot.LoadKeys(keysDir)
	if err != nil {
		t.Fatal(err)
	}
	vars, err := keys.Variables(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	machine := NewUEFI(t, ovmfVarsSetup, writeEFI(t, buildUKIWith(t, enrollInitrd(t, vars), "", nil)))
	vm := Boot(t, fx.Kernel, VMOptions{UEFI: machine})
	vm.WaitFor(`ENROLL after: setup mode false`)
	vm.WaitExit()
	if vm.Has(`ENROLL FAILED`) {
		t.Fatal("enrollment failed")
	}
	return &UEFI{Vars: machine.Vars}
}

// TestInstallDebian is `cfsboot install` end to end: the Debian root as an
// OCI image goes onto a fresh disk file (GPT, ESP with systemd-boot and the
// signed UKI built from the image's own kernel and modules, ext4 root with
// the store sealed in the helper VM since this host kernel has no
// fs-verity), and OVMF with the user's enrolled keys boots it under Secure
// Boot through systemd-boot to multi-user.target; `cfsboot status` inside
// reports the booted deployment. The running system then deploys a next
// image itself (`cfsboot deploy`), whose image is tampered with: its boot
// fails verification three times and systemd-boot falls back to the first
// with no human step. Last, the host deploys a third image offline
// (`cfsboot deploy --disk`).
func TestInstallDebian(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ref := debianOCI(t, dir, func(root string) {
		files := map[string]string{
			"usr/local/sbin/cfsboot-check": installCheckScript,
			"etc/fstab":                    "PARTLABEL=ESP /efi vfat umask=0077 0 2\n",
		}
		for p, content := range files {
			if err := os.WriteFile(filepath.Join(root, p), []byte(content), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		os.MkdirAll(filepath.Join(root, "efi"), 0o755)
		// The serial getty's vhangup on ttyS0 would cut the check
		// service's output off.
		if err := os.Symlink("/dev/null", filepath.Join(root, "etc/systemd/system/serial-getty@ttyS0.service")); err != nil {
			t.Fatal(err)
		}
		// A kernel package's postinst makes modules.dep; mounting the
		// ESP needs it (vfat is a module).
		run(t, "depmod", "-b", filepath.Join(root, "usr"), filepath.Base(fx.Kernel.Modules))
		// cfsboot deploy in the running system builds initrds with it.
		run(t, "cp", filepath.Join(fx.Dir, "cfsboot-init"), filepath.Join(root, "usr/bin/cfsboot-init"))
	})
	keys := filepath.Join(dir, "keys")
	run(t, fx.CfsbootBin, "keys", "create", "--dir", keys, "--name", "cfsboot install test")
	machine := enrolledMachine(t, keys)

	efi := filepath.Dir(stubPath)
	diskPath := filepath.Join(dir, "disk.img")
	start := time.Now()
	cmd := exec.Command(fx.CfsbootBin, "install", "--image", ref, "--disk", diskPath, "--size", "1500M", "--esp-size", "100M",
		"--keys", keys, "--stub", stubPath, "--bootloader", filepath.Join(efi, "systemd-bootx64.efi"),
		"--cmdline-extra", "console=ttyS0 panic=1", "--timeout", "0")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Logf("cfsboot install took %v:\n%s", time.Since(start), stderr.String())
	if err != nil {
		t.Fatalf("cfsboot install: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`^installed ([0-9a-f]{64}) on .*: entry EFI/Linux/(\S+), root PARTUUID=`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("cfsboot install said %q", out)
	}
	digest, entry := m[1], m[2]
	for _, want := range []string{`sealing in a helper VM`, `sealing: \d+/\d+ files`, `sealed \d+ files`} {
		if !regexp.MustCompile(want).MatchString(stderr.String()) {
			t.Errorf("install progress lacks /%s/", want)
		}
	}
	id := regexp.MustCompile(`\+3\.efi$`).ReplaceAllString(entry, ".efi")
	if id == entry || !strings.Contains(entry, digest[:12]) {
		t.Errorf("entry %s: want <os>-1-%s+3.efi", entry, digest[:12])
	}

	next, nextLayer := nextImageDisk(t, keys)
	vm := Boot(t, fx.Kernel, VMOptions{Disk: diskPath, TPM: true, UEFI: machine, ExtraDisks: []string{next}})
	vm.WaitFor(`EFI stub: UEFI Secure Boot is enabled`)
	vm.WaitFor(`cfsboot: composefs image ` + digest + ` verified`)
	state := vm.WaitFor(`CHECK state: `)
	root := vm.WaitFor(`CHECK root: `)
	esp := vm.WaitFor(`CHECK esp: `)
	statusLine := vm.WaitFor(`CHECK status json: `)
	deployExit := vm.WaitFor(`CHECK deploy exit: `)
	afterDeploy := vm.WaitFor(`CHECK status after deploy json: `)
	tampered := vm.WaitFor(`CHECK tampered: `)
	vm.WaitFor(`CHECK done`)
	vm.WaitExit()
	for _, l := range vm.Lines() {
		if strings.Contains(l, "CHECK failed unit:") || strings.Contains(l, "CHECK status: ") || strings.Contains(l, "CHECK deploy: ") {
			t.Log(l)
		}
	}
	if !strings.HasSuffix(state, "running") {
		t.Errorf("systemd in the installed system says %q", state)
	}
	if !strings.Contains(root, "verity=require") {
		t.Errorf("root mount %q is not verity=require", root)
	}
	if !strings.Contains(esp, "vfat") {
		t.Errorf("ESP mount %q", esp)
	}
	var st deployStatus
	js := parseStatus(t, statusLine, &st)
	if st.Booted != digest || st.BootedEntry != id || st.Default != id || len(st.Entries) != 1 || !st.Entries[0].Booted {
		t.Errorf("cfsboot status in the installed system: %s; want %s booted from %s, the default", js, digest, id)
	}
	// systemd-boot counted the boot: one try done, two left (nothing in
	// this root blesses it: trixie's systemd-bless-boot is in systemd-boot,
	// which the test root does not carry).
	if e := st.Entries[0]; e.TriesLeft == nil || *e.TriesLeft != 2 || e.TriesDone != 1 {
		t.Errorf("boot counter of %s: %+v", id, e)
	}

	// The running system deployed the next image and made it the default;
	// its image was then tampered with. systemd-boot tries it three times
	// (cfsboot-init fails verification and reboots, since the entry is
	// counted) and then boots A by itself.
	if !strings.HasSuffix(deployExit, ": 0") {
		t.Fatalf("cfsboot deploy in the VM: %s", deployExit)
	}
	bad := regexp.MustCompile(`images/([0-9a-f]{64})$`).FindStringSubmatch(tampered)
	if bad == nil {
		t.Fatalf("tampered line %q", tampered)
	}
	badID := "debian-2-" + bad[1][:12] + ".efi"
	var deployed deployStatus
	parseStatus(t, afterDeploy, &deployed)
	if deployed.Default != badID || deployed.Rollback != id || deployed.Booted != digest {
		t.Errorf("status after deploy: %+v; want default %s, rollback %s", deployed, badID, id)
	}
	start = time.Now()
	vm = startQEMU(t, append(machine.qemuArgs(), "-drive", "file="+diskPath+",if=virtio,format=raw,cache=unsafe")...)
	for i := 1; i <= 3; i++ {
		vm.WaitFor(`cfsboot: FAILED at stage verify: .*` + bad[1])
		vm.WaitFor(`rebooting in 1s: systemd-boot counts this try`)
	}
	vm.WaitFor(`cfsboot: composefs image ` + digest + ` verified`)
	statusLine = vm.WaitFor(`CHECK status json: `)
	vm.WaitFor(`CHECK done`)
	vm.WaitExit()
	t.Logf("three failed boots of the tampered deployment and the fallback took %v", time.Since(start))
	var fell deployStatus
	js = parseStatus(t, statusLine, &fell)
	if fell.Booted != digest || fell.BootedEntry != id || fell.Default != id || len(fell.Entries) != 2 {
		t.Fatalf("status after the fallback: %s; want %s booted and the default", js, id)
	}
	if e := fell.Entries[1]; e.File != "debian-2-"+bad[1][:12]+"+0-3.efi" || !e.Bad || e.TriesLeft == nil || *e.TriesLeft != 0 || e.TriesDone != 3 {
		t.Errorf("the tampered deployment after the fallback: %+v", e)
	}

	// Offline, from the host: deploy a third image onto the disk file (its
	// root partition loop-mounted, what was added sealed in the sealing
	// VM). --keep 2 removes the entry that used up its tries, not A.
	extra := filepath.Join(t.TempDir(), "third")
	os.MkdirAll(filepath.Join(extra, "etc"), 0o755)
	os.WriteFile(filepath.Join(extra, "etc", "third"), []byte("the third image\n"), 0o644)
	extraLayer := filepath.Join(t.TempDir(), "third.tar")
	run(t, "tar", "--numeric-owner", "--owner=0", "--group=0", "-C", extra, "-cf", extraLayer, ".")
	third := writeOCILayout(t, filepath.Join(t.TempDir(), "layout"), "third", nextLayer, extraLayer)
	cmd = exec.Command(fx.CfsbootBin, "deploy", "--disk", diskPath, "--keys", keys, "--stub", stubPath, third)
	stderr.Reset()
	cmd.Stderr = &stderr
	start = time.Now()
	if out, err := cmd.Output(); err != nil {
		t.Fatalf("cfsboot deploy --disk: %v\n%s%s", err, out, stderr.String())
	}
	t.Logf("cfsboot deploy --disk took %v:\n%s", time.Since(start), stderr.String())
	m = regexp.MustCompile(`deployed ([0-9a-f]{64}) as EFI/Linux/(\S+)`).FindStringSubmatch(stderr.String())
	for _, want := range []string{`sealed \d+ files`, `removing deployment debian-2-` + bad[1][:12]} {
		if m == nil || !regexp.MustCompile(want).MatchString(stderr.String()) {
			t.Fatalf("cfsboot deploy --disk did not say what it deployed, or /%s/", want)
		}
	}
	var offline deployStatus
	js = parseStatus(t, "json: "+run(t, fx.CfsbootBin, "status", "--disk", diskPath, "--json"), &offline)
	thirdID := "debian-3-" + m[1][:12] + ".efi"
	if offline.Default != thirdID || offline.Rollback != id || len(offline.Entries) != 2 {
		t.Errorf("status --disk after deploy --disk: %s; want %s the default, %s the rollback, and no bad entry", js, thirdID, id)
	}
}

// deployStatus is what the tests read of `cfsboot status --json`.
type deployStatus struct {
	Booted      string `json:"booted"`
	BootedEntry string `json:"booted_entry"`
	Default     string `json:"default"`
	Rollback    string `json:"rollback"`
	Entries     []struct {
		File      string `json:"file"`
		Booted    bool   `json:"booted"`
		Bad       bool   `json:"bad"`
		TriesLeft *int   `json:"tries_left"`
		TriesDone int    `json:"tries_done"`
	} `json:"entries"`
}

// parseStatus reads the JSON after the "CHECK ...: " prefix of a console line.
func parseStatus(t *testing.T, line string, st *deployStatus) string {
	t.Helper()
	js := line[strings.Index(line, "json: ")+len("json: "):]
	if err := json.Unmarshal([]byte(js), st); err != nil {
		t.Fatalf("cfsboot status --json in the VM: %v: %s", err, js)
	}
	return js
}

// nextImageDisk is a disk for the running system to deploy from: an OCI
// layout of a small image with the same kernel and os-release (no init:
// it is never meant to get that far), the keys and systemd-stub.
func nextImageDisk(t *testing.T, keys string) (disk, layer string) {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	mods := filepath.Join(root, "usr/lib/modules")
	for _, d := range []string{mods, filepath.Join(root, "etc"), filepath.Join(root, "var")} {
		os.MkdirAll(d, 0o755)
	}
	run(t, "cp", "-a", fx.Kernel.Modules, mods)
	run(t, "cp", fx.Kernel.Image, filepath.Join(mods, filepath.Base(fx.Kernel.Modules), "vmlinuz"))
	// Debian's os-release: systemd-boot orders entries by their
	// os-release version before their names.
	base, err := debianTarball()
	if err != nil {
		t.Fatal(err)
	}
	osRelease := run(t, "tar", "-xOf", base, "./usr/lib/os-release")
	if err := os.WriteFile(filepath.Join(root, "etc/os-release"), []byte(osRelease), 0o644); err != nil {
		t.Fatal(err)
	}
	layer = filepath.Join(dir, "layer.tar")
	run(t, "tar", "--numeric-owner", "--owner=0", "--group=0", "-C", root, "-cf", layer, ".")
	content := filepath.Join(dir, "content")
	os.MkdirAll(content, 0o755)
	writeOCILayout(t, filepath.Join(content, "layout"), "next", layer)
	run(t, "cp", "-a", keys, filepath.Join(content, "keys"))
	run(t, "cp", stubPath, content)
	img := filepath.Join(dir, "next.img")
	run(t, "mkfs.ext4", "-q", "-F", "-d", content, img, "256M")
	return img, layer
}
