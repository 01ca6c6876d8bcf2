package blockdev

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"testing"
)

// Fuzz targets for every reader of device metadata. Seeds: the heads of
// real filesystems made by their own mkfs (all of them for every reader,
// so each also sees the others' layouts), the truncated superblocks that
// crashed Probe, and sfdisk's GPT with the crafted headers that asked for
// gigabytes. Run one with: go test -fuzz FuzzReadExt ./initramfs/blockdev/

func fuzzSuperblock(f *testing.F, read superblockReader) {
	for _, fs := range realFilesystems(f) {
		f.Add(fs.head)
	}
	for _, dev := range truncatedSuperblocks() {
		f.Add(dev)
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		fstype, uuid, label, ok := read(head)
		if !ok && (fstype != "" || uuid != "" || label != "") {
			t.Fatalf("not recognized, yet %q %q %q", fstype, uuid, label)
		}
		if ok && fstype == "" {
			t.Fatal("recognized without a type")
		}
		if got, _, _ := Probe(bytes.NewReader(head)); ok && got == "" {
			t.Fatalf("Probe missed a %s superblock its reader recognizes", fstype)
		}
	})
}

func FuzzReadExt(f *testing.F)   { fuzzSuperblock(f, readExt) }
func FuzzReadBtrfs(f *testing.F) { fuzzSuperblock(f, readBtrfs) }
func FuzzReadXFS(f *testing.F)   { fuzzSuperblock(f, readXFS) }
func FuzzReadFAT(f *testing.F)   { fuzzSuperblock(f, readFAT) }

// FuzzReadGPT reads a GPT from the first bytes of a disk of diskSize bytes
// (the rest reads as zeros), with 512- or 4096-byte logical blocks.
func FuzzReadGPT(f *testing.F) {
	f.Add([]byte{}, int64(0), false)
	if _, err := exec.LookPath("sfdisk"); err == nil {
		raw, err := os.ReadFile(sfdiskGPT(f))
		if err != nil {
			f.Fatal(err)
		}
		head := raw[:34*512] // MBR, header, 128 entries
		f.Add(head, int64(len(raw)), false)
		le := binary.LittleEndian
		for _, edit := range []func(h []byte){
			func(h []byte) { le.PutUint32(h[80:], 1024); le.PutUint32(h[84:], 128<<20) },
			func(h []byte) { le.PutUint32(h[80:], 1<<30) },
			func(h []byte) { le.PutUint64(h[72:], 1<<40) },
		} {
			crafted := append([]byte{}, head...)
			gptHeader(crafted, edit)
			f.Add(crafted, int64(len(raw)), false)
		}
	}
	f.Fuzz(func(t *testing.T, head []byte, diskSize int64, bigBlocks bool) {
		bs := int64(512)
		if bigBlocks {
			bs = 4096
		}
		disk := sparseDisk{head, diskSize}
		parts, err := ReadGPT(disk, diskSize, bs)
		if err != nil {
			return
		}
		hdr := make([]byte, 92)
		disk.ReadAt(hdr, bs)
		count := int(binary.LittleEndian.Uint32(hdr[80:]))
		for _, p := range parts {
			if p.Number < 1 || p.Number > count || len(p.UUID) != 36 {
				t.Fatalf("partition %+v of a table of %d", p, count)
			}
		}
	})
}
