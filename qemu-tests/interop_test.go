//go:build qemu

package qemutests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"cfsboot/gen/tree"
	"cfsboot/initramfs/build"
	"cfsboot/verity"
)

// repoCmdline is the command line bootc writes for the composefs-rs disk,
// with first a digest whose image the store does not have (an older
// deployment's, say).
func repoCmdline(extra ...string) string {
	absent := verity.SHA512.ComputeBytes([]byte("an image this disk does not have"))
	return strings.Join(append([]string{
		"composefs.digest=v1-sha512-12:" + absent.String(),
		"composefs.digest=v1-sha512-12:" + fx.RepoDigest.String(),
		"root=LABEL=cfsroot", "rw", "rd.timeout=20",
	}, extra...), " ")
}

// TestComposefsRsDisk: a disk laid out as composefs-rs and bootc lay it
// out (meta.json fsverity-sha512-12, objects and images sealed with
// SHA-512, images/<hex> symlinks to their objects, state/deploy/<hex>/etc
// and a var linked to ../../os/default/var) boots from the second
// composefs.digest= (the first names an absent image), with the root named
// composefs:<hex>, /run/systemd/volatile-root made, /sysroot read-only,
// /etc an overlay kept in state/deploy/<hex>/etc and /var the shared one.
func TestComposefsRsDisk(t *testing.T) {
	t.Parallel()
	disk := fx.Disk(t, "composefs-rs")
	hexDigest := fx.RepoDigest.String()
	for boot := 1; boot <= 2; boot++ {
		vm := Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdNoShell, Disk: disk, Append: repoCmdline("testinit.fsck")})
		vm.WaitFor(`cfsboot: composefs image [0-9a-f]{128} \(composefs.digest=v1-sha512-12:[0-9a-f]{128}\) is not in the store; trying the next`)
		vm.WaitFor(`cfsboot: composefs image ` + hexDigest + ` verified`)
		vm.WaitFor(`cfsboot: switching to /sbin/init`)
		line := vm.WaitFor(`TESTINIT root mountinfo: `)
		root, err := ParseMountInfo(strings.TrimPrefix(line, "TESTINIT root mountinfo: "))
		if err != nil {
			t.Fatal(err)
		}
		if root.Source != "composefs:"+hexDigest || root.FSType != "overlay" || !slices.Contains(root.SuperOptions, "verity=require") {
			t.Errorf("root mount: %s", line)
		}
		if opts := vm.WaitFor(`TESTINIT mount /sysroot: `); !hasOption(opts, "ro") {
			t.Errorf("/sysroot is not read-only: %s", opts)
		}
		kept := "no"
		if boot == 2 {
			kept = "yes"
		}
		vm.WaitFor(`TESTINIT etc kept: ` + kept)
		vm.WaitFor(`TESTINIT etc writable: yes`)
		vm.WaitFor(`TESTINIT var boot count: ` + string(rune('0'+boot)) + `$`)
		for _, path := range []string{"/usr/share/cfsboot-test/big", "/usr/share/cfsboot-test/medium", "/etc/hostname"} {
			vm.WaitFor(`TESTINIT sha256 ` + path + `: ` + fx.Files[path])
		}
		vm.WaitFor(`TESTINIT volatile root: /dev/block/\d+:\d+$`)
		// The booted system's own fsck reads the SHA-512 repository.
		vm.WaitFor(`TESTINIT store fsck: 0 problems, fs-verity protected: true$`)
		vm.WaitFor(`TESTINIT done`)
		vm.WaitExit()
	}
	// The state is where composefs-rs and bootc keep it.
	if got := debugfsCat(t, disk, "/state/os/default/var/boot-count"); got != "2" {
		t.Errorf("shared /var boot-count = %q, want 2", got)
	}
	if got := debugfsCat(t, disk, "/state/deploy/"+hexDigest+"/etc/upper/testinit-written"); got != "ok\n" {
		t.Errorf("/etc upper layer in state/deploy/<hex>/etc/upper: %q", got)
	}
	// The image really is a symlink into objects/, sealed with SHA-512.
	if got := run(t, "debugfs", "-R", "stat /composefs/images/"+hexDigest, disk); !strings.Contains(got, "Fast link dest: \"../objects/"+tree.ObjectPathOf(fx.RepoDigest)+"\"") && !strings.Contains(got, "Type: symlink") {
		t.Errorf("images/%s is not a symlink: %s", hexDigest, got)
	}
}

// TestComposefsRsTransientState: with the setup-root configuration making
// /etc and /var transient, the boot writes nothing to the state directory.
func TestComposefsRsTransientState(t *testing.T) {
	t.Parallel()
	initrd := filepath.Join(t.TempDir(), "initrd-transient.img")
	out, err := os.Create(initrd)
	if err != nil {
		t.Fatal(err)
	}
	_, err = build.Build(out, build.Spec{Init: filepath.Join(fx.Dir, "cfsboot-init"), ModulesDir: fx.Kernel.Modules, Modules: initrdModules,
		SetupRootConf: []byte("[etc]\nmount = \"transient\"\n[var]\nmount = \"transient\"\n")})
	out.Close()
	if err != nil {
		t.Fatal(err)
	}
	disk := fx.Disk(t, "composefs-rs")
	before := stateTree(t, disk)
	vm := Boot(t, fx.Kernel, VMOptions{Initrd: initrd, Disk: disk, Append: repoCmdline()})
	vm.WaitFor(`cfsboot: setup-root-conf \[etc\]: /etc changes live in memory`)
	vm.WaitFor(`cfsboot: setup-root-conf \[var\]: /var changes live in memory`)
	vm.WaitFor(`TESTINIT etc kept: no`)
	vm.WaitFor(`TESTINIT etc writable: yes`)
	vm.WaitFor(`TESTINIT var boot count: 1$`)
	vm.WaitFor(`TESTINIT done`)
	vm.WaitExit()
	if after := stateTree(t, disk); !bytes.Equal(before, after) {
		t.Errorf("the state directory changed:\nbefore\n%s\nafter\n%s", before, after)
	}
}

// TestComposefsRsImageLinkOutsideStore: images/<hex> as a symlink leading
// out of the store (climbing, or absolute) to a valid sealed copy of the
// image is refused, never followed.
func TestComposefsRsImageLinkOutsideStore(t *testing.T) {
	t.Parallel()
	hexDigest := fx.RepoDigest.String()
	object := "/composefs/objects/" + tree.ObjectPathOf(fx.RepoDigest)
	for _, target := range []string{"../../outside-image", object} {
		disk := fx.Disk(t, "composefs-rs")
		Debugfs(t, disk, "ln "+object+" /outside-image")
		Debugfs(t, disk, "sif "+object+" links_count 2")
		Debugfs(t, disk, "rm /composefs/images/"+hexDigest)
		Debugfs(t, disk, "symlink /composefs/images/"+hexDigest+" "+target)
		vm := Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdNoShell, Disk: disk, Append: repoCmdline()})
		expectFailure(t, vm, "verify", "expected composefs image /sysroot/composefs/images/"+hexDigest+" (composefs.digest=v1-sha512-12:"+hexDigest+"): found a symlink leading out of the store")
	}
}

// debugfsCat returns a file's content on the ext4 disk image.
func debugfsCat(t *testing.T, disk, path string) string {
	t.Helper()
	out, err := exec.Command("debugfs", "-R", "cat "+path, disk).Output()
	if err != nil {
		t.Fatalf("debugfs cat %s: %v", path, err)
	}
	return string(out)
}

// stateTree lists every entry below /state on the disk with its type,
// size and, for files and links, content: what a boot must not change.
func stateTree(t *testing.T, disk string) []byte {
	t.Helper()
	dump := t.TempDir()
	run(t, "debugfs", "-R", "rdump /state "+dump, disk)
	var b bytes.Buffer
	err := filepath.Walk(dump, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dump, p)
		b.WriteString(rel + " " + fi.Mode().String())
		switch {
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.WriteString(" " + verity.ComputeBytes(data).String())
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			b.WriteString(" -> " + target)
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestVerityOptionalEntry: composefs=?<digest> (composefs-rs' "verity
// optional") is refused by an initrd built without --allow-insecure; one
// built with it boots an image that has no fs-verity, without the overlay's
// verity check, and measures composefs-insecure:<digest>, not the verified
// boot's event.
func TestVerityOptionalEntry(t *testing.T) {
	t.Parallel()
	d := fx.Digest.String()
	line := strings.Join([]string{"composefs=?" + d, "root=LABEL=cfsroot", "rw", "rd.timeout=20"}, " ")
	vm := Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdNoShell, Disk: fx.Disk(t, "unsealed-image"), Append: line})
	expectFailure(t, vm, "cmdline", "composefs=?"+d+": the '?' prefix makes fs-verity optional, and this initrd was not built with --allow-insecure")

	initrd := filepath.Join(t.TempDir(), "initrd-insecure.img")
	out, err := os.Create(initrd)
	if err != nil {
		t.Fatal(err)
	}
	_, err = build.Build(out, build.Spec{Init: filepath.Join(fx.Dir, "cfsboot-init"), ModulesDir: fx.Kernel.Modules, Modules: initrdModules, AllowInsecure: true})
	out.Close()
	if err != nil {
		t.Fatal(err)
	}
	vm = Boot(t, fx.Kernel, VMOptions{Initrd: initrd, Disk: fx.Disk(t, "unsealed-image"), Append: line, TPM: true})
	vm.WaitFor(`cfsboot: composefs image ` + d + ` NOT verified: it has no fs-verity`)
	vm.WaitFor(`cfsboot: measured "composefs-insecure:` + d + `" into PCR 15`)
	root, err := ParseMountInfo(strings.TrimPrefix(vm.WaitFor(`TESTINIT root mountinfo: `), "TESTINIT root mountinfo: "))
	if err != nil {
		t.Fatal(err)
	}
	if root.Source != "composefs:"+d || slices.Contains(root.SuperOptions, "verity=require") {
		t.Errorf("insecure root mount: %+v", root)
	}
	vm.WaitFor(`TESTINIT sha256 /usr/share/cfsboot-test/big: ` + fx.Files["/usr/share/cfsboot-test/big"])
	vm.WaitFor(`TESTINIT done`)
	vm.WaitExit()
	if vm.Has(`measured "composefs:`) {
		t.Error("an unverified boot was measured as the verified one")
	}
}
