//go:build qemu

package qemutests

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"cfsboot/secureboot"
)

// installCheckScript replaces the Debian check service's script in the
// installed image: it reports the deployments as `cfsboot status` sees
// them from inside (the ESP mounted at /efi by fstab), then runs the test's
// next step when one is attached: step.sh on /dev/vdb, with the images it
// deploys as an OCI layout, the keys and systemd-stub on /dev/vdc.
const installCheckScript = `#!/bin/sh
echo "CHECK state: $(systemctl is-system-running --wait)"
systemctl --failed --no-legend --plain | sed 's/^/CHECK failed unit: /'
echo "CHECK root: $(findmnt -n -o SOURCE,FSTYPE,OPTIONS /)"
echo "CHECK esp: $(findmnt -n -o SOURCE,FSTYPE /efi)"
echo "CHECK deployment: $(cat /usr/share/cfsboot-test/deployment)"
echo "CHECK status json: $(cfsboot status --json 2>&1 | tr -d '\n')"
cfsboot status 2>&1 | sed 's/^/CHECK status: /'

# deploy TAG [FLAGS]: deploy oci:/run/next/layout:TAG as the new default.
deploy() {
	tag=$1; shift
	echo "CHECK deploying $tag"
	cfsboot deploy --keys /run/next/keys --stub /run/next/linuxx64.efi.stub "$@" oci:/run/next/layout:$tag >/run/deploy.log 2>&1
	echo "CHECK deploy $tag exit: $?"
	sed 's/^/CHECK deploy: /' /run/deploy.log
	echo "CHECK status after deploy $tag json: $(cfsboot status --json 2>&1 | tr -d '\n')"
}
# tamper: overwrite the image deployed last; its boots fail verification.
tamper() {
	d=$(sed -n 's/^deployed \([0-9a-f]*\) as .*/\1/p' /run/deploy.log)
	for r in /sysroot /run/cfsboot/sysroot; do [ -d $r/composefs/images ] && s=$r/composefs/images && mount -o remount,bind,rw $r; done
	if [ -n "$d" ] && rm "$s/$d" && echo tampered >"$s/$d"; then echo "CHECK tampered: $s/$d"; fi
}
if [ -b /dev/vdb ]; then
	mkdir -p /run/step /run/next && mount -o ro /dev/vdb /run/step && mount -o ro /dev/vdc /run/next
	. /run/step/step.sh
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

// installedDebian is the Debian root, as an OCI image, installed by
// `cfsboot install` onto a fresh disk file for OVMF with the user's keys.
type installedDebian struct {
	dir, disk, keys string
	digest          string // deployment A's composefs digest
	id              string // A's entry id (its file name without the counter)
	machine         *UEFI
	tpmState        string
	layers          []string // A's layer tarballs
}

// installDebian builds the Debian root with the install check script as an
// OCI image, creates and enrolls keys, and runs `cfsboot install` (the
// store sealed in the helper VM, since this host kernel has no fs-verity).
func installDebian(t *testing.T) *installedDebian {
	t.Helper()
	dir := t.TempDir()
	ref := debianOCI(t, dir, func(root string) {
		files := map[string]string{
			"usr/local/sbin/cfsboot-check":      installCheckScript,
			"etc/fstab":                         "PARTLABEL=ESP /efi vfat umask=0077 0 2\n",
			"usr/share/cfsboot-test/deployment": "A\n",
		}
		writeFiles(t, root, files)
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
	base, err := debianTarball()
	if err != nil {
		t.Fatal(err)
	}
	in := &installedDebian{dir: dir, keys: filepath.Join(dir, "keys"), disk: filepath.Join(dir, "disk.img"),
		tpmState: filepath.Join(dir, "tpm"), layers: []string{base, filepath.Join(dir, "extras.tar")}}
	run(t, fx.CfsbootBin, "keys", "create", "--dir", in.keys, "--name", "cfsboot install test")
	in.machine = enrolledMachine(t, in.keys)

	efi := filepath.Dir(stubPath)
	start := time.Now()
	cmd := exec.Command(fx.CfsbootBin, "install", "--image", ref, "--disk", in.disk, "--size", "1500M", "--esp-size", "100M",
		"--keys", in.keys, "--stub", stubPath, "--bootloader", filepath.Join(efi, "systemd-bootx64.efi"),
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
	in.digest = m[1]
	for _, want := range []string{`sealing in a helper VM`, `sealing: \d+/\d+ files`, `sealed \d+ files`} {
		if !regexp.MustCompile(want).MatchString(stderr.String()) {
			t.Errorf("install progress lacks /%s/", want)
		}
	}
	in.id = regexp.MustCompile(`\+3\.efi$`).ReplaceAllString(m[2], ".efi")
	if in.id != "debian-1-"+in.digest[:12]+".efi" || in.id == m[2] {
		t.Errorf("entry %s: want debian-1-%s+3.efi", m[2], in.digest[:12])
	}
	return in
}

// boot starts the installed machine (reboots stay in the VM, which ends at
// power off), with step as the check script's next step when not "" and
// more disks after the content disk (/dev/vdd, ...).
func (in *installedDebian) boot(t *testing.T, step, content string, more ...string) *VM {
	t.Helper()
	o := VMOptions{Disk: in.disk, TPM: true, TPMState: in.tpmState, UEFI: in.machine, Reboot: true}
	if step != "" {
		o.ExtraDisks = append([]string{stepDisk(t, step), content}, more...)
	}
	return Boot(t, fx.Kernel, o)
}

// stepDisk is a small ext4 image holding step.sh for the check script.
func stepDisk(t *testing.T, script string) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "step"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "step", "step.sh"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "step.img")
	run(t, "mkfs.ext4", "-q", "-F", "-d", filepath.Join(dir, "step"), img, "4M")
	return img
}

// report collects what the demo prints of a test's boots.
type report []string

func (r *report) add(vm *VM, title string) {
	*r = append(*r, title)
	for _, l := range vm.Lines() {
		for _, key := range []string{"EFI stub: UEFI Secure Boot is enabled", "cfsboot: composefs image", "cfsboot: FAILED", "rebooting in",
			"Kernel panic", "CHECK deployment", "CHECK status:", "CHECK deploying", "CHECK deploy: deployed", "CHECK tampered", "CHECK rollback:"} {
			if strings.Contains(l, key) {
				// The kernel's console repeats what init writes to /dev/kmsg.
				if line := "  " + strings.TrimSpace(l[strings.Index(l, key):]); line != (*r)[len(*r)-1] {
					*r = append(*r, line)
				}
				break
			}
		}
	}
}

// TestInstallDebian is `cfsboot install` and the update loop end to end,
// under OVMF Secure Boot with the user's enrolled keys and swtpm. The
// Debian root as an OCI image (A) goes onto a fresh disk file: GPT, an ESP
// with signed systemd-boot and the signed UKI built from the image's own
// kernel and modules, an ext4 root with the sealed store. Then, each step
// run by the booted system itself:
//   - A boots to multi-user.target and systemd-bless-boot blesses it;
//     `cfsboot status` reports A booted and blessed. A deploys B (A plus a layer).
//   - B boots, is blessed, A is the rollback. B deploys C (then tampers
//     with C's image) and D, whose root init fails.
//   - systemd-boot tries D three times (the kernel panics when D's init
//     exits), then C three times (cfsboot-init fails verification and
//     reboots), then boots B by itself; status shows C and D with 0 tries.
//     B runs `cfsboot rollback`.
//   - A boots, the default again, B the rollback.
//
// Last, the host deploys a fourth image offline (`cfsboot deploy --disk`),
// which prunes the failed deployments.
func TestInstallDebian(t *testing.T) {
	t.Parallel()
	in := installDebian(t)
	content, layerC := deployContent(t, in)
	var demo report

	// Boot 1: A. It deploys B.
	vm := in.boot(t, `deploy b`, content)
	vm.WaitFor(`EFI stub: UEFI Secure Boot is enabled`)
	vm.WaitFor(`cfsboot: composefs image ` + in.digest + ` verified`)
	state := vm.WaitFor(`CHECK state: `)
	root := vm.WaitFor(`CHECK root: `)
	esp := vm.WaitFor(`CHECK esp: `)
	statusA := vm.WaitFor(`CHECK status json: `)
	deployB := vm.WaitFor(`CHECK deploy b exit: `)
	afterB := vm.WaitFor(`CHECK status after deploy b json: `)
	vm.WaitFor(`CHECK done`)
	vm.WaitExit()
	demo.add(vm, "boot 1: A, installed by cfsboot install; it deploys B")
	logLines(t, vm, "CHECK failed unit:", "CHECK status: ", "CHECK deploy: ")
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
	js := parseStatus(t, statusA, &st)
	// systemd-bless-boot dropped the counter once the boot was good.
	if st.Booted != in.digest || st.BootedEntry != in.id || st.Default != in.id || !st.BootedBlessed ||
		len(st.Entries) != 1 || !st.Entries[0].Booted || st.Entries[0].File != in.id || st.Entries[0].TriesLeft != nil {
		t.Errorf("cfsboot status in A: %s; want %s booted from %s, blessed, the default", js, in.digest, in.id)
	}
	if !strings.HasSuffix(deployB, ": 0") {
		t.Fatalf("cfsboot deploy of B in A: %s", deployB)
	}
	parseStatus(t, afterB, &st)
	idB := st.Default
	if !strings.HasPrefix(idB, "debian-2-") || st.Rollback != in.id {
		t.Fatalf("status after deploying B: %+v; want debian-2-* the default, %s the rollback", st, in.id)
	}

	// Boot 2: B. It deploys C (tampered) and D (its init fails).
	vm = in.boot(t, "deploy c --keep 4\ntamper\ndeploy d --keep 4\n", content)
	vm.WaitFor(`cfsboot: composefs image [0-9a-f]{64} verified`)
	deployment := vm.WaitFor(`CHECK deployment: `)
	statusB := vm.WaitFor(`CHECK status json: `)
	tampered := vm.WaitFor(`CHECK tampered: `)
	deployD := vm.WaitFor(`CHECK deploy d exit: `)
	afterD := vm.WaitFor(`CHECK status after deploy d json: `)
	vm.WaitFor(`CHECK done`)
	vm.WaitExit()
	demo.add(vm, "boot 2: B; it deploys C, tampered with after the deploy, and D, whose init fails")
	logLines(t, vm, "CHECK failed unit:", "CHECK status: ", "CHECK deploy: ")
	js = parseStatus(t, statusB, &st)
	if !strings.HasSuffix(deployment, ": B") || st.BootedEntry != idB || !st.BootedBlessed || st.Default != idB || st.Rollback != in.id {
		t.Fatalf("boot 2 is %q, status %s; want B (%s) booted, blessed and the default, A the rollback", deployment, js, idB)
	}
	c := regexp.MustCompile(`images/([0-9a-f]{64})$`).FindStringSubmatch(tampered)
	if c == nil || !strings.HasSuffix(deployD, ": 0") {
		t.Fatalf("tampered line %q, deploy of D %q", tampered, deployD)
	}
	idC := "debian-3-" + c[1][:12] + ".efi"
	parseStatus(t, afterD, &st)
	idD := st.Default
	if !strings.HasPrefix(idD, "debian-4-") || len(st.Entries) != 4 {
		t.Fatalf("status after deploying D: %+v; want debian-4-* the default of 4 entries", st)
	}

	// D three times, C three times, then B with no human step. B rolls back to A.
	start := time.Now()
	vm = in.boot(t, "cfsboot rollback 2>&1 | sed 's/^/CHECK rollback: /'\n"+
		`echo "CHECK status after rollback json: $(cfsboot status --json 2>&1 | tr -d '\n')"`+"\n", content)
	for i := 1; i <= 3; i++ {
		vm.WaitFor(`cfsboot: composefs image [0-9a-f]{64} verified`)
		vm.WaitFor(`cfsboot test: the root init of D fails`)
		vm.WaitFor(`Kernel panic - not syncing: Attempted to kill init`)
	}
	for i := 1; i <= 3; i++ {
		vm.WaitFor(`cfsboot: FAILED at stage verify: .*` + c[1])
		vm.WaitFor(`rebooting in 1s: systemd-boot counts this try`)
	}
	vm.WaitFor(`cfsboot: composefs image [0-9a-f]{64} verified`)
	deployment = vm.WaitFor(`CHECK deployment: `)
	fell := vm.WaitFor(`CHECK status json: `)
	rolled := vm.WaitFor(`CHECK status after rollback json: `)
	vm.WaitFor(`CHECK done`)
	vm.WaitExit()
	demo.add(vm, "boots 3-9: D fails three times, C three times, systemd-boot falls back to B; B rolls back to A")
	t.Logf("six failed boots and the fallback to B took %v", time.Since(start))
	js = parseStatus(t, fell, &st)
	if !strings.HasSuffix(deployment, ": B") || st.BootedEntry != idB || st.Default != idB || st.Rollback != in.id || len(st.Entries) != 4 {
		t.Fatalf("after the failures booted %q, status %s; want B booted and the default, A the rollback", deployment, js)
	}
	for _, e := range st.Entries[2:] {
		if e.File != strings.TrimSuffix(idD, ".efi")+"+0-3.efi" && e.File != strings.TrimSuffix(idC, ".efi")+"+0-3.efi" || !e.Bad || *e.TriesLeft != 0 {
			t.Errorf("a failed deployment after the fallback: %+v; want %s and %s at +0-3", e, idD, idC)
		}
	}
	js = parseStatus(t, rolled, &st)
	idA := "debian-5-" + in.digest[:12] + ".efi"
	if st.Default != idA || st.Rollback != idB {
		t.Fatalf("status after cfsboot rollback: %s; want %s (A) the default, %s the rollback", js, idA, idB)
	}

	// A again. Its kernel has fs-verity: it installs B onto another disk
	// and seals that store in place, with no helper VM.
	target := filepath.Join(t.TempDir(), "target.img")
	if err := os.WriteFile(target, nil, 0o644); err != nil || os.Truncate(target, 1500<<20) != nil {
		t.Fatal(err)
	}
	vm = in.boot(t, `echo "CHECK installing b"
TMPDIR=/var/tmp cfsboot install --image oci:/run/next/layout:b --disk /dev/vdd --keys /run/next/keys --esp-size 100M \
	--stub /run/next/linuxx64.efi.stub --bootloader /run/next/systemd-bootx64.efi --cmdline-extra "console=ttyS0 panic=1" --timeout 0 >/run/install.log 2>&1
echo "CHECK install exit: $?"
sed 's/^/CHECK install: /' /run/install.log
`, content, target)
	vm.WaitFor(`cfsboot: composefs image ` + in.digest + ` verified`)
	deployment = vm.WaitFor(`CHECK deployment: `)
	statusA = vm.WaitFor(`CHECK status json: `)
	installB := vm.WaitFor(`CHECK install exit: `)
	vm.WaitFor(`CHECK done`)
	vm.WaitExit()
	demo.add(vm, "boot 10: A, after the rollback")
	logLines(t, vm, "CHECK install: ")
	js = parseStatus(t, statusA, &st)
	if !strings.HasSuffix(deployment, ": A") || st.Booted != in.digest || st.BootedEntry != idA || st.Default != idA || st.Rollback != idB {
		t.Errorf("after the rollback booted %q, status %s; want A booted from %s, the default, B the rollback", deployment, js, idA)
	}
	if !strings.HasSuffix(installB, ": 0") || !vm.Has(`CHECK install: sealing the store in place \(the host kernel has fs-verity\)`) || vm.Has(`CHECK install: .*helper VM`) {
		t.Fatalf("cfsboot install in the running system: %s; want it sealed in place", installB)
	}
	// The disk installed (and sealed in place) inside the VM boots B.
	vm = Boot(t, fx.Kernel, VMOptions{Disk: target, UEFI: &UEFI{Vars: in.machine.Vars}, Reboot: true})
	vm.WaitFor(`EFI stub: UEFI Secure Boot is enabled`)
	vm.WaitFor(`cfsboot: composefs image ` + idB[len("debian-2-"):len("debian-2-")+12] + `[0-9a-f]{52} verified`)
	if state := vm.WaitFor(`CHECK state: `); !strings.HasSuffix(state, "running") {
		t.Errorf("the disk installed in the VM: systemd says %q", state)
	}
	if d := vm.WaitFor(`CHECK deployment: `); !strings.HasSuffix(d, ": B") {
		t.Errorf("the disk installed in the VM booted %q, want B", d)
	}
	vm.WaitFor(`CHECK done`)
	vm.WaitExit()
	demo.add(vm, "the disk A installed B onto, sealed in place")

	// Offline, from the host: deploy a fourth image onto the disk file (its
	// root partition loop-mounted, what was added sealed in the sealing
	// VM). --keep 2 keeps it and A, and removes B and the failed ones.
	extra := filepath.Join(t.TempDir(), "fourth")
	writeFiles(t, extra, map[string]string{"etc/fourth": "the fourth image\n"})
	extraLayer := layerTar(t, extra, filepath.Join(t.TempDir(), "fourth.tar"))
	fourth := writeOCILayout(t, filepath.Join(t.TempDir(), "layout"), "fourth", layerC, extraLayer)
	cmd := exec.Command(fx.CfsbootBin, "deploy", "--disk", in.disk, "--keys", in.keys, "--stub", stubPath, fourth)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start = time.Now()
	if out, err := cmd.Output(); err != nil {
		t.Fatalf("cfsboot deploy --disk: %v\n%s%s", err, out, stderr.String())
	}
	t.Logf("cfsboot deploy --disk took %v:\n%s", time.Since(start), stderr.String())
	m := regexp.MustCompile(`deployed ([0-9a-f]{64}) as EFI/Linux/(\S+)`).FindStringSubmatch(stderr.String())
	for _, want := range []string{`sealed \d+ files`, `removing deployment debian-2-`, `removing deployment debian-3-`, `removing deployment debian-4-`} {
		if m == nil || !regexp.MustCompile(want).MatchString(stderr.String()) {
			t.Fatalf("cfsboot deploy --disk did not say what it deployed, or /%s/", want)
		}
	}
	js = parseStatus(t, "json: "+run(t, fx.CfsbootBin, "status", "--disk", in.disk, "--json"), &st)
	if id := "debian-6-" + m[1][:12] + ".efi"; st.Default != id || st.Rollback != idA || len(st.Entries) != 2 {
		t.Errorf("status --disk after deploy --disk: %s; want %s the default, %s the rollback, nothing else", js, id, idA)
	}
	t.Log("\ncfsboot demo: install, deploy, automatic fallback and rollback under Secure Boot\n" + strings.Join(demo, "\n"))
}

// logLines logs the console lines that hold any of keys.
func logLines(t *testing.T, vm *VM, keys ...string) {
	t.Helper()
	for _, l := range vm.Lines() {
		for _, k := range keys {
			if strings.Contains(l, k) {
				t.Log(l)
				break
			}
		}
	}
}

// deployStatus is what the tests read of `cfsboot status --json`.
type deployStatus struct {
	Booted        string `json:"booted"`
	BootedEntry   string `json:"booted_entry"`
	BootedBlessed bool   `json:"booted_blessed"`
	Default       string `json:"default"`
	Rollback      string `json:"rollback"`
	Entries       []struct {
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

// deployContent is the disk the running system deploys from: an OCI layout
// with B (A plus a layer), C (a small image with the same kernel and
// os-release and no init: it is never meant to get that far) and D (B plus
// a layer whose /usr/sbin/init fails), the keys, systemd-stub and
// systemd-boot. layerC is C's layer, for the offline deploy.
func deployContent(t *testing.T, in *installedDebian) (disk, layerC string) {
	t.Helper()
	dir := t.TempDir()
	layer := func(name string, files map[string]string) string {
		writeFiles(t, filepath.Join(dir, name), files)
		return layerTar(t, filepath.Join(dir, name), filepath.Join(dir, name+".tar"))
	}
	layerB := layer("b", map[string]string{"usr/share/cfsboot-test/deployment": "B\n"})
	layerD := layer("d", map[string]string{
		"usr/share/cfsboot-test/deployment": "D\n",
		"usr/sbin/init":                     "#!/bin/sh\necho 'cfsboot test: the root init of D fails'\nexit 1\n",
	})

	// C: the VM kernel and modules and Debian's os-release (systemd-boot
	// orders entries by their os-release version before their names).
	rootC := filepath.Join(dir, "c")
	mods := filepath.Join(rootC, "usr/lib/modules")
	for _, d := range []string{mods, filepath.Join(rootC, "etc"), filepath.Join(rootC, "var")} {
		os.MkdirAll(d, 0o755)
	}
	run(t, "cp", "-a", fx.Kernel.Modules, mods)
	run(t, "cp", fx.Kernel.Image, filepath.Join(mods, filepath.Base(fx.Kernel.Modules), "vmlinuz"))
	osRelease := run(t, "tar", "-xOf", in.layers[0], "./usr/lib/os-release")
	if err := os.WriteFile(filepath.Join(rootC, "etc/os-release"), []byte(osRelease), 0o644); err != nil {
		t.Fatal(err)
	}
	layerC = layerTar(t, rootC, filepath.Join(dir, "c.tar"))

	content := filepath.Join(dir, "content")
	os.MkdirAll(content, 0o755)
	layoutDir := filepath.Join(content, "layout")
	writeOCILayout(t, layoutDir, "b", append(slices.Clone(in.layers), layerB)...)
	writeOCILayout(t, layoutDir, "c", layerC)
	writeOCILayout(t, layoutDir, "d", append(slices.Clone(in.layers), layerB, layerD)...)
	run(t, "cp", "-a", in.keys, filepath.Join(content, "keys"))
	run(t, "cp", stubPath, filepath.Join(filepath.Dir(stubPath), "systemd-bootx64.efi"), content)
	img := filepath.Join(dir, "content.img")
	run(t, "mkfs.ext4", "-q", "-F", "-d", content, img, "1G")
	return img, layerC
}

// TestInstallInterrupted stops `cfsboot install` with SIGTERM while its
// sealing VM runs, as systemd or a Ctrl-C would: it exits at once, says it
// was interrupted, and leaves no temporary directory and no QEMU behind.
func TestInstallInterrupted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ref := debianOCI(t, dir, nil)
	keys := filepath.Join(dir, "keys")
	run(t, fx.CfsbootBin, "keys", "create", "--dir", keys, "--name", "cfsboot interrupt test")
	tmp := t.TempDir()
	diskPath := filepath.Join(dir, "disk.img")
	cmd := exec.Command(fx.CfsbootBin, "install", "--image", ref, "--disk", diskPath, "--size", "1500M", "--esp-size", "100M",
		"--keys", keys, "--stub", stubPath, "--bootloader", filepath.Join(filepath.Dir(stubPath), "systemd-bootx64.efi"))
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	console := NewConsole(stderr, io.Discard)
	if _, ok := console.Next(regexp.MustCompile(`sealing: \d+/\d+ files`), 5*time.Minute); !ok {
		cmd.Process.Kill()
		t.Fatalf("install never reached the sealing VM:\n%s", console.Tail(20))
	}
	qemus := func() string {
		out, _ := exec.Command("pgrep", "-f", "qemu-system.*"+diskPath).Output()
		return strings.TrimSpace(string(out))
	}
	if qemus() == "" {
		t.Fatal("no sealing VM runs for the disk")
	}
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	<-console.Done()
	t.Logf("install exited %v after SIGTERM: %v\n%s", time.Since(sent), err, console.Tail(5))
	if err == nil || !console.Has(regexp.MustCompile(`^cfsboot install: interrupted: .*context canceled`)) {
		t.Errorf("install after SIGTERM: %v; want a failure that says it was interrupted", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("install left %s in TMPDIR", left[0].Name())
	}
	if p := qemus(); p != "" {
		t.Errorf("the sealing VM still runs: pid %s", p)
	}
}

// TestInstallDebianPowerCut pulls the plug (kills QEMU) at random moments
// while the installed Debian deploys B itself (the store import with
// fs-verity, the UKI build, the ESP write), then boots what is left on the
// disk: every cut disk boots A or B, verified, to multi-user.target.
func TestInstallDebianPowerCut(t *testing.T) {
	t.Parallel()
	in := installDebian(t)
	content, _ := deployContent(t, in)
	pristine := filepath.Join(in.dir, "pristine.img")
	run(t, "cp", "--sparse=always", in.disk, pristine)

	// bootAfter boots the disk as the cut left it and returns what booted.
	bootAfter := func(what string) string {
		vm := in.boot(t, "", "")
		state := vm.WaitFor(`CHECK state: `)
		deployment := vm.WaitFor(`CHECK deployment: `)
		vm.WaitFor(`CHECK done`)
		vm.WaitExit()
		if vm.Has(`cfsboot: FAILED`) || !strings.HasSuffix(state, "running") {
			t.Errorf("%s: the boot after it failed or is degraded (%s):\n%s", what, state, vm.tail(20))
		}
		return deployment[len(deployment)-1:]
	}

	// An undisturbed deploy, timed, to spread the cuts over it.
	vm := in.boot(t, "deploy b", content)
	vm.WaitFor(`CHECK deploying b`)
	start := time.Now()
	if exit := vm.WaitFor(`CHECK deploy b exit: `); !strings.HasSuffix(exit, ": 0") {
		t.Fatalf("deploy of B: %s", exit)
	}
	span := time.Since(start)
	vm.WaitFor(`CHECK done`)
	vm.WaitExit()
	t.Logf("an undisturbed deploy of B in the running system takes %v", span)
	if got := bootAfter("the undisturbed deploy"); got != "B" {
		t.Fatalf("after an undisturbed deploy of B, %s booted", got)
	}

	seen := map[string]int{}
	for i := 0; i < 3; i++ {
		run(t, "cp", "--sparse=always", pristine, in.disk)
		vm := in.boot(t, "deploy b", content)
		vm.WaitFor(`CHECK deploying b`)
		// Anywhere up to half a deploy past its end, except that the
		// second cut comes near the end, where the UKI goes onto the ESP.
		from, width := int64(0), int64(span)*3/2
		if i == 1 {
			from, width = int64(span)*8/10, int64(span)*4/10
		}
		cut := time.Duration(from + rand.Int64N(width))
		time.Sleep(cut)
		vm.Kill()
		<-vm.exited
		got := bootAfter(fmt.Sprintf("cut %d at %v", i, cut))
		t.Logf("cut %d, %v into the deploy: %s boots", i, cut, got)
		if got != "A" && got != "B" {
			t.Errorf("cut %d: %q booted", i, got)
		}
		seen[got]++
	}
	t.Logf("deployments booted after the cuts: %v", seen)
}
