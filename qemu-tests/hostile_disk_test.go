//go:build qemu

package qemutests

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Hostile disks: a good boot of the sealed root with a second virtio disk
// whose metadata is crafted to break the initrd's device probing. PID 1
// reads every disk's superblock (and the GPT of partitioned disks) while it
// looks for root=, so each of these once killed it, and the kernel with it.

// hostileDisk writes a raw disk image of data into the test's directory.
func hostileDisk(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".img")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// truncatedExt4 ends at 1536 bytes, inside the superblock whose magic it
// carries (at 1080).
func truncatedExt4() []byte {
	d := make([]byte, 1536)
	binary.LittleEndian.PutUint16(d[1024+56:], 0xef53)
	return d
}

// truncatedBtrfs ends at 66048 bytes, inside the 4 KiB superblock at 64 KiB
// whose magic it carries.
func truncatedBtrfs() []byte {
	d := make([]byte, 66048)
	copy(d[64<<10+64:], "_BHRfS_M")
	return d
}

// hugeEntryGPT is an 8 MiB disk with one MBR partition (so the kernel
// creates /dev/vdb1 and PID 1 looks for its disk's GPT) and at LBA 1 a GPT
// header with a valid CRC announcing 1024 entries of 128 MiB each.
func hugeEntryGPT() []byte {
	const size, sector = 8 << 20, 512
	d := make([]byte, size)
	le := binary.LittleEndian
	p := d[446:] // MBR partition 1: Linux, LBA 2048 to the end
	p[4] = 0x83
	le.PutUint32(p[8:], 2048)
	le.PutUint32(p[12:], size/sector-2048)
	d[510], d[511] = 0x55, 0xaa
	h := d[sector : sector+92]
	copy(h, "EFI PART")
	le.PutUint32(h[8:], 0x00010000) // revision 1.0
	le.PutUint32(h[12:], 92)
	le.PutUint64(h[24:], 1)             // this header's LBA
	le.PutUint64(h[32:], size/sector-1) // the backup's
	le.PutUint64(h[40:], 34)
	le.PutUint64(h[48:], size/sector-34)
	copy(h[56:], "hostile-gpt-disk")
	le.PutUint64(h[72:], 2)
	le.PutUint32(h[80:], 1024)
	le.PutUint32(h[84:], 128<<20)
	le.PutUint32(h[16:], crc32.ChecksumIEEE(h))
	return d
}

// TestHostileDisks: the root still boots, PID 1 picks /dev/vda, and the
// kernel never panics.
func TestHostileDisks(t *testing.T) {
	for name, data := range map[string][]byte{
		"gpt-huge-entries": hugeEntryGPT(),
		"ext4-truncated":   truncatedExt4(),
		"btrfs-truncated":  truncatedBtrfs(),
	} {
		t.Run(name, func(t *testing.T) {
			vm := Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdNoShell, Disk: fx.Disk(t, "sealed"),
				ExtraDisks: []string{hostileDisk(t, name, data)}, Append: cmdline(fx.Digest.String())})
			vm.WaitFor(`cfsboot: root device /dev/vda `)
			vm.WaitFor(`cfsboot: composefs image ` + fx.Digest.String() + ` verified`)
			vm.WaitFor(`TESTINIT done`)
			vm.WaitExit()
			if vm.Has(`Kernel panic|panic:|fatal error:|goroutine \d+ \[`) {
				t.Errorf("a panic on the console:\n%s", vm.tail(40))
			}
			if !vm.Has(`virtio_blk virtio\d+: \[vdb\]`) {
				t.Errorf("the hostile disk was not attached as vdb:\n%s", vm.tail(60))
			}
		})
	}
}

// TestHostileDuplicateLabel: a second disk with the root's label is a
// clean failure naming both disks, not a boot of whichever came first.
func TestHostileDuplicateLabel(t *testing.T) {
	twin := filepath.Join(t.TempDir(), "twin.img")
	run(t, "mkfs.ext4", "-q", "-F", "-L", "cfsroot", twin, "8M")
	vm := Boot(t, fx.Kernel, VMOptions{Initrd: fx.InitrdShell, Disk: fx.Disk(t, "sealed"),
		ExtraDisks: []string{twin}, Append: cmdline(fx.Digest.String())})
	expectFailure(t, vm, "root", `root device: more than one block device matches root=LABEL=cfsroot: /dev/vda TYPE="ext4"`)
	for _, line := range vm.Lines() {
		if strings.Contains(line, "cfsboot: FAILED at stage root") && !strings.Contains(line, `; /dev/vdb TYPE="ext4"`) {
			t.Errorf("the failure does not name the second disk: %s", line)
		}
	}
	if vm.Has(`Kernel panic`) {
		t.Errorf("kernel panic:\n%s", vm.tail(40))
	}
}
