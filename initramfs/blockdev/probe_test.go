package blockdev

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// realFS is the head of a filesystem image made by its own mkfs, and what
// blkid (the oracle) says of the whole image.
type realFS struct {
	head  []byte
	blkid map[string]string
}

// mkfsCases are the filesystems Probe knows, as their tools make them.
var mkfsCases = []struct {
	name, tool string
	size       int64
	args       []string
}{
	{"ext2", "mkfs.ext2", 8 << 20, []string{"-q", "-F", "-L", "old"}},
	{"ext3", "mkfs.ext3", 8 << 20, []string{"-q", "-F", "-L", "journal"}},
	{"ext4", "mkfs.ext4", 8 << 20, []string{"-q", "-F", "-L", "cfsroot", "-U", "6f1c4a52-86b3-4c53-9d7a-0a3e1b2c3d4e"}},
	{"btrfs", "mkfs.btrfs", 128 << 20, []string{"-q", "-L", "pool", "-U", "0c0ffee0-1234-4abc-8def-0123456789ab"}},
	{"xfs", "mkfs.xfs", 320 << 20, []string{"-q", "-L", "data"}}, // XFS wants 300 MB
	{"vfat", "mkfs.vfat", 8 << 20, []string{"-n", "EFI", "-i", "1234ABCD"}},
	{"vfat32", "mkfs.vfat", 64 << 20, []string{"-F", "32", "-n", "BIG", "-i", "CAFE0001"}},
}

var (
	realOnce sync.Once
	realFSs  map[string]realFS
	realErr  error
)

// realFilesystems makes every filesystem whose mkfs is installed (once per
// test binary) and keeps the first probeSize bytes of each; a missing tool
// leaves its filesystem out.
func realFilesystems(tb testing.TB) map[string]realFS {
	tb.Helper()
	realOnce.Do(func() { realFSs, realErr = makeFilesystems() })
	if realErr != nil {
		tb.Fatal(realErr)
	}
	return realFSs
}

func makeFilesystems() (map[string]realFS, error) {
	dir, err := os.MkdirTemp("", "blockdev-probe-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := map[string]realFS{}
	for _, c := range mkfsCases {
		if _, err := exec.LookPath(c.tool); err != nil {
			continue
		}
		img := filepath.Join(dir, c.name+".img")
		if err := os.WriteFile(img, nil, 0o644); err != nil {
			return nil, err
		}
		if err := os.Truncate(img, c.size); err != nil { // sparse
			return nil, err
		}
		if b, err := exec.Command(c.tool, append(c.args, img)...).CombinedOutput(); err != nil {
			return nil, errors.New(c.tool + ": " + err.Error() + "\n" + string(b))
		}
		want, err := blkid(img)
		if err != nil {
			return nil, err
		}
		raw, err := os.ReadFile(img)
		if err != nil {
			return nil, err
		}
		out[c.name] = realFS{head: raw[:probeSize], blkid: want}
	}
	return out, nil
}

// blkid returns blkid's low-level probe of a file.
func blkid(path string) (map[string]string, error) {
	out, err := exec.Command("blkid", "-p", "-o", "export", path).Output()
	if err != nil {
		return nil, errors.New("blkid " + path + ": " + err.Error())
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m, nil
}

func TestProbeAgainstBlkid(t *testing.T) {
	if _, err := exec.LookPath("blkid"); err != nil {
		t.Skip("blkid (util-linux) not installed")
	}
	real := realFilesystems(t)
	for _, c := range mkfsCases {
		t.Run(c.name, func(t *testing.T) {
			fs, ok := real[c.name]
			if !ok {
				t.Skipf("%s not installed", c.tool)
			}
			fstype, uuid, label := Probe(bytes.NewReader(fs.head))
			want := fs.blkid
			if fstype == "" || fstype != want["TYPE"] || !strings.EqualFold(uuid, want["UUID"]) || label != want["LABEL"] {
				t.Fatalf("probe: %s %s %q; blkid: %v", fstype, uuid, label, want)
			}
		})
	}
}

// TestProbeTruncatedSuperblocks: a device that holds a filesystem's magic
// but ends inside its superblock is unknown, not a panic of PID 1. These
// two sizes crashed Probe before it checked what it had read.
func TestProbeTruncatedSuperblocks(t *testing.T) {
	for name, dev := range truncatedSuperblocks() {
		if fstype, uuid, label := Probe(bytes.NewReader(dev)); fstype != "" || uuid != "" || label != "" {
			t.Errorf("%s (%d bytes): probed as %q %q %q", name, len(dev), fstype, uuid, label)
		}
	}
	// Every prefix of a real superblock region probes as nothing or as
	// exactly what the whole one is.
	for name, fs := range realFilesystems(t) {
		whole, _, _ := Probe(bytes.NewReader(fs.head))
		for n := 0; n <= len(fs.head); n += 256 {
			if got, _, _ := Probe(bytes.NewReader(fs.head[:n])); got != "" && got != whole {
				t.Errorf("%s cut at %d bytes probed as %s", name, n, got)
			}
		}
	}
}

// truncatedSuperblocks are devices that end right after a magic number.
func truncatedSuperblocks() map[string][]byte {
	ext4 := make([]byte, 1536) // ext4 magic at 1080, superblock needs 2048
	binary.LittleEndian.PutUint16(ext4[1024+56:], 0xef53)
	btrfs := make([]byte, 66048) // btrfs magic at 65600, superblock needs 69632
	copy(btrfs[64<<10+64:], "_BHRfS_M")
	return map[string][]byte{"ext4": ext4, "btrfs": btrfs}
}

func TestProbeGarbage(t *testing.T) {
	for _, size := range []int{0, 100, 1100, 70000} {
		if fstype, _, _ := Probe(strings.NewReader(strings.Repeat("\xff", size))); fstype != "" {
			t.Errorf("%d bytes of garbage probed as %s", size, fstype)
		}
	}
}

// sfdiskGPT makes a 16 MiB GPT disk with sfdisk (the oracle for its UUIDs).
func sfdiskGPT(tb testing.TB) string {
	tb.Helper()
	if _, err := exec.LookPath("sfdisk"); err != nil {
		tb.Skip("sfdisk not installed")
	}
	img := filepath.Join(tb.TempDir(), "disk.img")
	os.WriteFile(img, nil, 0o644)
	os.Truncate(img, 16<<20)
	cmd := exec.Command("sfdisk", "-q", img)
	cmd.Stdin = strings.NewReader("label: gpt\nsize=4MiB, name=esp, uuid=0FC63DAF-8483-4772-8E79-3D69D8477DE4\nname=root\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("sfdisk: %v\n%s", err, out)
	}
	return img
}

func readGPTFile(t *testing.T, raw []byte) ([]Partition, error) {
	t.Helper()
	return ReadGPT(bytes.NewReader(raw), int64(len(raw)), 512)
}

func TestGPTAgainstSfdisk(t *testing.T) {
	img := sfdiskGPT(t)
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := readGPTFile(t, raw)
	if err != nil || len(parts) != 2 {
		t.Fatalf("%v %v", parts, err)
	}
	out, err := exec.Command("sfdisk", "--part-uuid", img, "2").Output()
	if err != nil {
		t.Fatal(err)
	}
	if parts[0].UUID != "0fc63daf-8483-4772-8e79-3d69d8477de4" || !strings.EqualFold(parts[1].UUID, strings.TrimSpace(string(out))) || parts[0].Label != "esp" || parts[1].Number != 2 {
		t.Fatalf("partitions %+v, sfdisk says partition 2 is %s", parts, out)
	}
	// A corrupted header fails its checksum.
	bad := append([]byte{}, raw...)
	bad[512+40] ^= 1
	if _, err := readGPTFile(t, bad); err == nil || !strings.Contains(err.Error(), "header checksum") {
		t.Fatalf("corrupt GPT header: %v", err)
	}
}

// gptHeader edits the primary header of a GPT disk image in place and
// recomputes its CRC, as an attacker with the disk in hand would.
func gptHeader(disk []byte, edit func(h []byte)) {
	h := disk[512 : 512+92]
	edit(h)
	binary.LittleEndian.PutUint32(h[16:], 0)
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h))
}

// TestGPTRejectsCraftedHeaders: header fields with a valid CRC but values
// no sane GPT has are refused before they size an allocation or a read.
// The first case asked the old reader for 128 GiB (1024 entries of 128 MiB).
func TestGPTRejectsCraftedHeaders(t *testing.T) {
	good, err := os.ReadFile(sfdiskGPT(t))
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	for name, c := range map[string]struct {
		edit func(h []byte)
		want string
	}{
		"huge entries":           {func(h []byte) { le.PutUint32(h[80:], 1024); le.PutUint32(h[84:], 128<<20) }, "entry size 134217728 is not a power of two in 128..4096"},
		"entry size 200":         {func(h []byte) { le.PutUint32(h[84:], 200) }, "entry size 200"},
		"entry size 64":          {func(h []byte) { le.PutUint32(h[84:], 64) }, "entry size 64"},
		"too many entries":       {func(h []byte) { le.PutUint32(h[80:], 1<<30) }, "1073741824 entries of 128 bytes exceed"},
		"entries past the end":   {func(h []byte) { le.PutUint64(h[72:], 1<<40) }, "partition entries at LBA 1099511627776"},
		"entries over the end":   {func(h []byte) { le.PutUint64(h[72:], 16<<20/512-1) }, "partition entries at LBA 32767 (32 blocks)"},
		"entries on the header":  {func(h []byte) { le.PutUint64(h[72:], 1) }, "partition entries at LBA 1"},
		"usable past the end":    {func(h []byte) { le.PutUint64(h[48:], 1<<50) }, "usable LBAs"},
		"header beyond a block":  {func(h []byte) { le.PutUint32(h[12:], 4096) }, "header size 4096 outside 92..512"},
		"not at LBA 1":           {func(h []byte) { le.PutUint64(h[24:], 7) }, "at LBA 7, not 1"},
		"entries CRC (no match)": {func(h []byte) { le.PutUint32(h[88:], 1) }, "entries checksum mismatch"},
	} {
		disk := append([]byte{}, good...)
		gptHeader(disk, c.edit)
		if _, err := readGPTFile(t, disk); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, c.want)
		}
	}
	// Without a protective MBR the kernel does not read the GPT, so neither
	// do we (it may be stale, with partition UUIDs the kernel never uses).
	disk := append([]byte{}, good...)
	disk[446+4] = 0x83
	if _, err := readGPTFile(t, disk); err == nil || !strings.Contains(err.Error(), "protective") {
		t.Errorf("GPT behind an MBR without 0xEE: %v", err)
	}
	for _, c := range []struct{ size, bs int64 }{{1024, 512}, {16 << 20, 1000}, {16 << 20, 256}, {-1, 512}} {
		if _, err := ReadGPT(bytes.NewReader(good), c.size, c.bs); err == nil {
			t.Errorf("disk of %d bytes with %d-byte blocks accepted", c.size, c.bs)
		}
	}
}

func TestMatchesAndSpec(t *testing.T) {
	d := Device{Path: "/dev/vda2", UUID: "6f1c4a52-86b3-4c53-9d7a-0a3e1b2c3d4e", Label: "cfsroot", PartUUID: "0fc63daf-8483-4772-8e79-3d69d8477de4"}
	for spec, want := range map[string]bool{
		"UUID=6F1C4A52-86B3-4C53-9D7A-0A3E1B2C3D4E": true, "LABEL=cfsroot": true, "LABEL=CFSROOT": false,
		"PARTUUID=0fc63daf-8483-4772-8e79-3d69d8477de4": true, "/dev/vda2": true, "/dev/vda": false, "UUID=x": false,
	} {
		if d.Matches(spec) != want {
			t.Errorf("%s: %v", spec, !want)
		}
	}
	for _, bad := range []string{"", "vda", "UUID=", "FOO=bar"} {
		if ValidSpec(bad) == nil {
			t.Errorf("spec %q accepted", bad)
		}
	}
}

// TestMatchRefusesDuplicates: two devices carrying the root's label (or
// UUID) are an error naming both, not "the first one scanned wins".
func TestMatchRefusesDuplicates(t *testing.T) {
	root := Device{Path: "/dev/vda", FSType: "ext4", UUID: "6f1c4a52-86b3-4c53-9d7a-0a3e1b2c3d4e", Label: "cfsroot"}
	twin := Device{Path: "/dev/sdb1", FSType: "ext4", UUID: root.UUID, Label: "cfsroot"}
	other := Device{Path: "/dev/vdc", FSType: "xfs", Label: "data"}
	if d, found, err := Match([]Device{root, other}, "LABEL=cfsroot"); !found || err != nil || d != root {
		t.Fatalf("one match: %v %v %v", d, found, err)
	}
	if _, found, err := Match([]Device{other}, "LABEL=cfsroot"); found || err != nil {
		t.Fatalf("no match: %v %v", found, err)
	}
	for _, spec := range []string{"LABEL=cfsroot", "UUID=" + root.UUID} {
		_, found, err := Match([]Device{root, other, twin}, spec)
		if found || !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), root.String()) || !strings.Contains(err.Error(), twin.String()) || strings.Contains(err.Error(), "/dev/vdc") {
			t.Errorf("%s on two disks: found=%v %v", spec, found, err)
		}
	}
}

// sparseDisk serves data and then zeros up to size, like a sparse image.
type sparseDisk struct {
	data []byte
	size int64
}

func (d sparseDisk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= d.size {
		return 0, io.EOF
	}
	n := len(p)
	if rest := d.size - off; int64(n) > rest {
		n = int(rest)
	}
	clear(p[:n])
	if off < int64(len(d.data)) {
		copy(p[:n], d.data[off:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
