//go:build qemu

package qemutests

import (
	"bytes"
	"os"
	"path"
	"path/filepath"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"

	"cfsboot/initramfs/layout"
)

// TestModulesFailSafe boots an initrd whose module rules give the disk
// driver no alias, as for a controller whose modalias no alias names: the
// init loads only the filesystems, finds no root device, and after the
// grace time loads the remaining modules, says why, and boots.
func TestModulesFailSafe(t *testing.T) {
	t.Parallel()
	base, err := os.ReadFile(fx.InitrdNoShell)
	if err != nil {
		t.Fatal(err)
	}
	// The kernel unpacks concatenated archives in order, later files
	// replacing earlier ones: a second archive replaces load.rules. Each
	// archive starts 4-byte aligned (the kernel skips zero padding).
	var extra bytes.Buffer
	extra.Write(base)
	extra.Write(make([]byte, (4-len(base)%4)%4))
	w := cpio.Newc.Writer(&extra)
	rules := "always erofs.ko\ndepends erofs.ko libcrc32c.ko\nalways overlay.ko\n"
	if err := cpio.WriteRecords(w, []cpio.Record{cpio.StaticFile(path.Join(layout.ModulesDir, layout.LoadRules), rules, 0o644)}); err != nil {
		t.Fatal(err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(t.TempDir(), "initrd.img")
	if err := os.WriteFile(initrd, extra.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	vm := Boot(t, fx.Kernel, VMOptions{Initrd: initrd, Disk: fx.Disk(t, "sealed"), Append: cmdline(fx.Digest.String())})
	vm.WaitFor(`cfsboot: module erofs.ko \(always\)`)
	vm.WaitFor(`cfsboot: loading the 3 remaining modules: root device LABEL=cfsroot not found within 1s`)
	vm.WaitFor(`cfsboot: module virtio_blk.ko \(root device LABEL=cfsroot not found within 1s\)`)
	vm.WaitFor(`cfsboot: composefs image ` + fx.Digest.String() + ` verified`)
	vm.WaitFor(`TESTINIT root fstype: overlay`)
}
