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
// reports the booted deployment.
func TestInstallDebian(t *testing.T) {
	t.Parallel()
	Debian(t) // fetches the tarball and checks the Debian fixture
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
	})
	keys := filepath.Join(dir, "keys")
	run(t, fx.CfsbootBin, "keys", "create", "--dir", keys, "--name", "cfsboot install test")
	machine := enrolledMachine(t, keys)

	efi := filepath.Dir(stubPath)
	diskPath := filepath.Join(dir, "disk.img")
	start := time.Now()
	cmd := exec.Command(fx.CfsbootBin, "install", "--image", ref, "--disk", diskPath, "--size", "1500M", "--esp-size", "100M",
		"--keys", keys, "--stub", stubPath, "--bootloader", filepath.Join(efi, "systemd-bootx64.efi"),
		"--cmdline-extra", "console=ttyS0", "--timeout", "0")
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

	vm := Boot(t, fx.Kernel, VMOptions{Disk: diskPath, TPM: true, UEFI: machine})
	vm.WaitFor(`EFI stub: UEFI Secure Boot is enabled`)
	vm.WaitFor(`cfsboot: composefs image ` + digest + ` verified`)
	state := vm.WaitFor(`CHECK state: `)
	root := vm.WaitFor(`CHECK root: `)
	esp := vm.WaitFor(`CHECK esp: `)
	statusLine := vm.WaitFor(`CHECK status json: `)
	vm.WaitFor(`CHECK done`)
	vm.WaitExit()
	for _, l := range vm.Lines() {
		if strings.Contains(l, "CHECK failed unit:") || strings.Contains(l, "CHECK status: ") {
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
	var st struct {
		Booted      string `json:"booted"`
		BootedEntry string `json:"booted_entry"`
		Default     string `json:"default"`
		Entries     []struct {
			File      string `json:"file"`
			Booted    bool   `json:"booted"`
			TriesLeft *int   `json:"tries_left"`
			TriesDone int    `json:"tries_done"`
		} `json:"entries"`
	}
	js := statusLine[strings.Index(statusLine, "CHECK status json: ")+len("CHECK status json: "):]
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		t.Fatalf("cfsboot status --json in the VM: %v: %s", err, js)
	}
	if st.Booted != digest || st.BootedEntry != id || st.Default != id || len(st.Entries) != 1 || !st.Entries[0].Booted {
		t.Errorf("cfsboot status in the installed system: %s; want %s booted from %s, the default", js, digest, id)
	}
	// systemd-boot counted the boot: one try done, two left (nothing in
	// this root blesses it: trixie's systemd-bless-boot is in systemd-boot,
	// which the test root does not carry).
	if e := st.Entries[0]; e.TriesLeft == nil || *e.TriesLeft != 2 || e.TriesDone != 1 {
		t.Errorf("boot counter of %s: %+v", id, e)
	}
}
