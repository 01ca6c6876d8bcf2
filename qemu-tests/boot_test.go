//go:build qemu

package qemutests

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"cfsboot/verity"
)

var fx *Fixture

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cfsboot-qemu-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fx, err = NewFixture(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "qemu fixture:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cmdline is the kernel command line of a normal boot of the test image.
func cmdline(digest string, extra ...string) string {
	return strings.Join(append([]string{"composefs=" + digest, "root=LABEL=cfsroot", "rw", "rd.timeout=20"}, extra...), " ")
}

func TestGoodBoot(t *testing.T) {
	t.Parallel()
	disk := fx.Disk(t, "sealed")
	for boot := 1; boot <= 2; boot++ {
		vm := Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdNoShell, Disk: disk, Append: cmdline(fx.Digest.String())})
		// No TPM in this VM, and none in its ACPI tables: the boot does
		// not wait for one to appear.
		vm.WaitFor(`cfsboot: no TPM \(the firmware's ACPI tables announce none\): this boot is not measured`)
		vm.WaitFor(`cfsboot: composefs image ` + fx.Digest.String() + ` verified`)
		vm.WaitFor(`cfsboot: switching to /sbin/init`)
		vm.WaitFor(`TESTINIT root fstype: overlay`)
		line := vm.WaitFor(`TESTINIT root mountinfo: `)
		root, err := ParseMountInfo(strings.TrimPrefix(line, "TESTINIT root mountinfo: "))
		if err != nil {
			t.Fatal(err)
		}
		if root.FSType != "overlay" || !slices.Contains(root.MountOptions, "ro") || root.Source != "composefs:"+fx.Digest.String() {
			t.Errorf("root is not a read-only overlay mount named composefs:<digest>: %s", line)
		}
		for _, want := range []string{"ro", "verity=require", "metacopy=on", "redirect_dir=on"} {
			if !slices.Contains(root.SuperOptions, want) {
				t.Errorf("root overlay options lack %s: %s", want, line)
			}
		}
		vm.WaitFor(`TESTINIT etc writable: yes`)
		vm.WaitFor(`TESTINIT usr writable: no`)
		vm.WaitFor(fmt.Sprintf(`TESTINIT var boot count: %d$`, boot))
		for _, path := range []string{"/usr/share/cfsboot-test/big", "/usr/share/cfsboot-test/medium", "/etc/hostname"} {
			vm.WaitFor(`TESTINIT sha256 ` + path + `: ` + fx.Files[path])
		}
		vm.WaitFor(`TESTINIT sysroot: yes`)
		vm.WaitFor(`TESTINIT done`)
		vm.WaitExit()
	}
}

// expectFailure boots and checks the FAILED line names stage and cause,
// that the root never ran, that no shell started and the machine powered off.
func expectFailure(t *testing.T, vm *VM, stage, cause string) {
	t.Helper()
	line := vm.WaitFor(`cfsboot: FAILED at stage `)
	if !strings.Contains(line, "FAILED at stage "+stage+": ") || !strings.Contains(line, cause) {
		t.Errorf("failure line %q, want stage %s and %q", line, stage, cause)
	}
	vm.WaitFor(`cfsboot: powering off`)
	vm.WaitExit()
	if vm.Has(`TESTINIT`) || vm.Has(`switching to`) {
		t.Error("the unverified root ran")
	}
	if vm.Has(`starting debug shell`) {
		t.Error("a debug shell started without rd.shell")
	}
}

// TestWrongDigest: the image composefs= names is missing, or the file under
// its name is a sealed image of another tree.
func TestWrongDigest(t *testing.T) {
	t.Parallel()
	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		other := verity.ComputeBytes([]byte("not the image"))
		vm := Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdShell, Disk: fx.Disk(t, "sealed"), Append: cmdline(other.String())})
		expectFailure(t, vm, "verify", "expected one of the composefs images the command line names in /sysroot/composefs/images, found none of them (tried composefs="+other.String()+")")
	})
	t.Run("mismatch", func(t *testing.T) {
		t.Parallel()
		disk := fx.Disk(t, "sealed")
		ReplaceFile(t, disk, "composefs/images/"+fx.Digest.String(), "composefs/images/"+fx.OtherDigest.String())
		vm := Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdShell, Disk: disk, Append: cmdline(fx.Digest.String())})
		expectFailure(t, vm, "verify", "expected fs-verity digest sha256:"+fx.Digest.String()+" (composefs="+fx.Digest.String()+"), found sha256:"+fx.OtherDigest.String()+" for /sysroot/composefs/images/"+fx.Digest.String())
	})
}

func TestImageRenamedToWrongDigest(t *testing.T) {
	t.Parallel()
	disk := fx.Disk(t, "sealed")
	other := verity.ComputeBytes([]byte("impostor"))
	Debugfs(t, disk, fmt.Sprintf("ln /composefs/images/%s /composefs/images/%s", fx.Digest, other))
	vm := Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdShell, Disk: disk, Append: cmdline(other.String())})
	expectFailure(t, vm, "verify", "expected fs-verity digest sha256:"+other.String()+" (composefs="+other.String()+"), found sha256:"+fx.Digest.String())
}

func TestTamperedImage(t *testing.T) {
	t.Parallel()
	disk := fx.Disk(t, "sealed")
	CorruptFile(t, disk, "composefs/images/"+fx.Digest.String())
	vm := Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdShell, Disk: disk, Append: cmdline(fx.Digest.String())})
	// fs-verity catches the flipped byte when the image's blocks are read:
	// the kernel reports the corrupted block, mounting fails and init
	// explains why, so nothing of the image is ever used.
	vm.WaitFor(`fs-verity \(vda, inode \d+\): FILE CORRUPTED! pos=0`)
	expectFailure(t, vm, "mount", "the verified image failed fs-verity checks while being read (its blocks changed on disk after it was sealed): erofs create: input/output error")
}

func TestImageWithoutVerity(t *testing.T) {
	t.Parallel()
	vm := Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdShell, Disk: fx.Disk(t, "unsealed-image"), Append: cmdline(fx.Digest.String())})
	expectFailure(t, vm, "verify", "found a file without it: the image is not protected")
}

func TestTamperedObject(t *testing.T) {
	t.Parallel()
	disk := fx.Disk(t, "sealed")
	CorruptFile(t, disk, fx.BigObject)
	vm := Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdNoShell, Disk: disk, Append: cmdline(fx.Digest.String())})
	vm.WaitFor(`TESTINIT read /usr/share/cfsboot-test/big: error: .*input/output error`)
	vm.WaitFor(`TESTINIT sha256 /usr/share/cfsboot-test/medium: ` + fx.Files["/usr/share/cfsboot-test/medium"])
	vm.WaitExit()
}

// TestMissingObject: a file whose object is gone cannot be opened (the
// kernel names the file it could not find data for), other files still
// read, and the store's check in the booted system names the object and
// the images (both share it) that need it.
func TestMissingObject(t *testing.T) {
	t.Parallel()
	disk := fx.Disk(t, "sealed")
	RemoveFile(t, disk, fx.BigObject)
	vm := Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdNoShell, Disk: disk, Append: cmdline(fx.Digest.String(), "testinit.fsck")})
	vm.WaitFor(`TESTINIT read /usr/share/cfsboot-test/big: error: open /usr/share/cfsboot-test/big: no such file or directory$`)
	if !vm.Has(`overlayfs: lazy lowerdata lookup failed \(cfsboot-test/big, err=-2\)`) {
		t.Error("the kernel did not report the failed lookup of big's data")
	}
	vm.WaitFor(`TESTINIT sha256 /usr/share/cfsboot-test/medium: ` + fx.Files["/usr/share/cfsboot-test/medium"])
	vm.WaitFor(`TESTINIT store fsck: 1 problems, fs-verity protected: true$`)
	vm.WaitExit()
	var problems []string
	for _, l := range vm.Lines() {
		if p, ok := strings.CutPrefix(l, "TESTINIT store problem: "); ok {
			problems = append(problems, p)
		}
	}
	images := []string{"/sysroot/composefs/images/" + fx.Digest.String(), "/sysroot/composefs/images/" + fx.OtherDigest.String()}
	slices.Sort(images)
	want := []string{"/sysroot/" + fx.BigObject + ": missing (referenced by " + strings.Join(images, ", ") + ")"}
	if !slices.Equal(problems, want) {
		t.Errorf("store fsck in the booted system found\n%s\nwant\n%s", strings.Join(problems, "\n"), strings.Join(want, "\n"))
	}
}

func TestNoRootDevice(t *testing.T) {
	t.Parallel()
	vm := Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdShell, Disk: fx.Disk(t, "sealed"),
		Append: "composefs=" + fx.Digest.String() + " root=UUID=00000000-0000-4000-8000-000000000000 rd.timeout=3"})
	expectFailure(t, vm, "root", `waited 3s for root device: no block device matches root=UUID=00000000-0000-4000-8000-000000000000; devices seen: /dev/vda TYPE="ext4" UUID="`)
}

func TestMalformedCmdline(t *testing.T) {
	t.Parallel()
	vm := Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdShell, Disk: fx.Disk(t, "sealed"), Append: "composefs=xyz root=LABEL=cfsroot"})
	expectFailure(t, vm, "cmdline", "composefs=xyz: fs-verity digest")
}

func TestShellOnFailureWithRdShell(t *testing.T) {
	t.Parallel()
	other := verity.ComputeBytes([]byte("not the image"))
	vm := Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdShell, Disk: fx.Disk(t, "sealed"), Append: cmdline(other.String(), "rd.shell")})
	vm.WaitFor(`cfsboot: FAILED at stage verify`)
	vm.WaitFor(`cfsboot: starting debug shell`)
	// The prompt ends without a newline; busybox's banner line does not.
	vm.WaitFor(`Enter 'help' for a list of built-in commands`)
	vm.Send("echo shell-$((6*7))")
	vm.WaitFor(`^shell-42`)
	vm.Send("exit")
	vm.WaitFor(`cfsboot: powering off`)
	vm.WaitExit()
	if vm.Has(`TESTINIT`) {
		t.Error("the root ran after the shell exited")
	}
}

// TestBreakpoint: rd.break=mount stops in a shell after verification and
// before the mount; the boot continues when the shell exits.
func TestBreakpoint(t *testing.T) {
	t.Parallel()
	vm := Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdShell, Disk: fx.Disk(t, "sealed"), Append: cmdline(fx.Digest.String(), "rd.break=mount")})
	vm.WaitFor(`cfsboot: composefs image .* verified`)
	vm.WaitFor(`cfsboot: rd.break=mount: starting debug shell`)
	vm.WaitFor(`Enter 'help' for a list of built-in commands`)
	if vm.Has(`cfsboot: stage mount`) {
		t.Fatal("the mount stage ran before the breakpoint shell")
	}
	vm.Send("echo images: $(ls /sysroot/composefs/images | wc -l); exit")
	vm.WaitFor(`^images: 2`)
	vm.WaitFor(`cfsboot: stage mount`)
	vm.WaitFor(`TESTINIT done`)
	vm.WaitExit()
}
