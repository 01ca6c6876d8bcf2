package disk

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"cfsboot/initramfs/blockdev"
)

func needTool(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("%s not installed (Makefile APT_PACKAGES)", n)
		}
	}
}

func TestGUIDRoundTrip(t *testing.T) {
	g := MustParseGUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
	if g.String() != "c12a7328-f81f-11d2-ba4b-00a0c93ec93b" {
		t.Fatalf("String() = %s", g)
	}
	// On disk the first three fields are little-endian (UEFI spec 5.3.1).
	want := []byte{0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b}
	if got := g.mixedEndian(); string(got[:]) != string(want) {
		t.Fatalf("mixedEndian = %x, want %x", got, want)
	}
	for _, bad := range []string{"", "c12a7328f81f11d2ba4b00a0c93ec93b", "c12a7328-f81f-11d2-ba4b-00a0c93ec93g"} {
		if _, err := ParseGUID(bad); err == nil {
			t.Errorf("ParseGUID(%q) accepted", bad)
		}
	}
	r, err := RandomGUID()
	if err != nil {
		t.Fatal(err)
	}
	if s := r.String(); s[14] != '4' || !strings.ContainsRune("89ab", rune(s[19])) {
		t.Errorf("random GUID %s is not version 4, variant 1", s)
	}
}

func TestLayout(t *testing.T) {
	tab, err := Layout(100<<20, []Partition{{Type: TypeESP, Name: "ESP", Size: 33 << 20}, {Type: TypeRootX86_64, Name: "root"}})
	if err != nil {
		t.Fatal(err)
	}
	esp, root := tab.Partitions[0], tab.Partitions[1]
	if esp.Offset() != 1<<20 || esp.Bytes() != 33<<20 {
		t.Errorf("ESP at %d (+%d), want 1 MiB (+33 MiB)", esp.Offset(), esp.Bytes())
	}
	if root.Offset() != 34<<20 || root.Offset()+root.Bytes() != 99<<20 {
		t.Errorf("root at %d (+%d), want 34 MiB to 99 MiB (the last MiB holds the backup table)", root.Offset(), root.Bytes())
	}
	if esp.UUID.IsZero() || root.UUID.IsZero() || esp.UUID == root.UUID {
		t.Errorf("partition UUIDs not chosen: %s %s", esp.UUID, root.UUID)
	}
	for _, bad := range [][]Partition{
		{{Type: TypeESP, Size: 200 << 20}},
		{{Type: TypeESP}, {Type: TypeRootX86_64, Size: 1 << 20}},
		{{Size: 1 << 20}},
		{{Type: TypeESP, Size: 1 << 20, Name: strings.Repeat("x", 37)}},
	} {
		if _, err := Layout(100<<20, bad); err == nil {
			t.Errorf("Layout(%+v) accepted", bad)
		}
	}
}

// sfdiskDump is the part of `sfdisk --json` the test compares.
type sfdiskDump struct {
	PartitionTable struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		FirstLBA   uint64 `json:"firstlba"`
		LastLBA    uint64 `json:"lastlba"`
		Partitions []struct {
			Start uint64 `json:"start"`
			Size  uint64 `json:"size"`
			Type  string `json:"type"`
			UUID  string `json:"uuid"`
			Name  string `json:"name"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

func TestWriteMatchesSfdiskAndOurReader(t *testing.T) {
	needTool(t, "sfdisk", "blkid")
	path := filepath.Join(t.TempDir(), "disk.img")
	f, size, err := Open(path, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rootUUID := MustParseGUID("0fc63daf-8483-4772-8e79-3d69d8477de4")
	tab, err := Layout(size, []Partition{{Type: TypeESP, Name: "ESP", Size: 10 << 20}, {Type: TypeRootX86_64, UUID: rootUUID, Name: "root"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.Write(f); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sfdisk", "--verify", path).CombinedOutput(); err != nil || !strings.Contains(string(out), "No errors detected") {
		t.Fatalf("sfdisk --verify: %v\n%s", err, out)
	}
	out, err := exec.Command("sfdisk", "--json", path).Output()
	if err != nil {
		t.Fatalf("sfdisk --json: %v", err)
	}
	var d sfdiskDump
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatal(err)
	}
	pt := d.PartitionTable
	if pt.Label != "gpt" || !strings.EqualFold(pt.ID, tab.DiskGUID.String()) || pt.FirstLBA != 34 || pt.LastLBA != uint64(size/512-34) {
		t.Errorf("sfdisk sees label %s id %s lbas %d-%d; wrote disk GUID %s", pt.Label, pt.ID, pt.FirstLBA, pt.LastLBA, tab.DiskGUID)
	}
	if len(pt.Partitions) != 2 {
		t.Fatalf("sfdisk sees %d partitions: %s", len(pt.Partitions), out)
	}
	for i, p := range pt.Partitions {
		w := tab.Partitions[i]
		if p.Start != w.FirstLBA || p.Size != w.LastLBA-w.FirstLBA+1 || !strings.EqualFold(p.Type, w.Type.String()) || !strings.EqualFold(p.UUID, w.UUID.String()) || p.Name != w.Name {
			t.Errorf("partition %d: sfdisk %+v, wrote %+v", i+1, p, w)
		}
	}
	// blkid's own GPT prober, and the low-level probe of the whole disk.
	if out, err := exec.Command("blkid", "-p", "-o", "value", "-s", "PTTYPE", path).Output(); err != nil || strings.TrimSpace(string(out)) != "gpt" {
		t.Errorf("blkid -p PTTYPE = %q (%v), want gpt", out, err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	parts, err := blockdev.ReadGPT(f, st.Size(), 512)
	if err != nil {
		t.Fatalf("initramfs/blockdev.ReadGPT: %v", err)
	}
	if len(parts) != 2 || parts[1].UUID != rootUUID.String() || parts[1].Label != "root" || parts[0].Number != 1 {
		t.Errorf("ReadGPT = %+v", parts)
	}
	// The backup header must be valid on its own: destroy the primary and
	// let sfdisk recover from the backup.
	if _, err := f.WriteAt(make([]byte, 512), 512); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command("sfdisk", "--json", path).CombinedOutput()
	if err != nil || !strings.Contains(strings.ToLower(string(out)), rootUUID.String()) {
		t.Errorf("sfdisk with only the backup GPT: %v\n%s", err, out)
	}
}

func TestFilesystemsInPartitions(t *testing.T) {
	needTool(t, "mkfs.vfat", "mcopy", "mmd", "mdir", "fsck.vfat", "mkfs.ext4", "e2fsck", "blkid", "debugfs")
	dir := t.TempDir()
	path := filepath.Join(dir, "disk.img")
	f, size, err := Open(path, 200<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := Layout(size, []Partition{{Type: TypeESP, Name: "ESP", Size: 64 << 20}, {Type: TypeRootX86_64, Name: "root"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.Write(f); err != nil {
		t.Fatal(err)
	}
	esp, root := tab.Partitions[0], tab.Partitions[1]

	loader := filepath.Join(dir, "loader.conf")
	os.WriteFile(loader, []byte("timeout 3\n"), 0o644)
	fat := filepath.Join(dir, "esp.img")
	if err := MakeFAT(fat, esp.Bytes(), "ESP", []ESPFile{{"loader/loader.conf", loader}, {"EFI/BOOT/BOOTX64.EFI", loader}}); err != nil {
		t.Fatal(err)
	}
	if err := CopyAt(f, esp.Offset(), esp.Bytes(), fat); err != nil {
		t.Fatal(err)
	}
	staging := filepath.Join(dir, "root")
	os.MkdirAll(filepath.Join(staging, "composefs", "objects"), 0o755)
	os.WriteFile(filepath.Join(staging, "composefs", "marker"), []byte("hello"), 0o644)
	if err := MakeExt4(path, root.Offset(), root.Bytes(), root.UUID, "root", staging); err != nil {
		t.Fatal(err)
	}

	// mkfs.ext4 at an offset must leave the rest of the disk alone.
	if out, err := exec.Command("sfdisk", "--verify", path).CombinedOutput(); err != nil || !strings.Contains(string(out), "No errors detected") {
		t.Fatalf("sfdisk --verify after mkfs: %v\n%s", err, out)
	}
	if out, err := exec.Command("mdir", "-b", "-i", path+"@@"+itoa(esp.Offset()), "::/EFI/BOOT").CombinedOutput(); err != nil || !strings.Contains(string(out), "BOOTX64.EFI") {
		t.Errorf("mdir of the ESP inside the disk: %v\n%s", err, out)
	}
	espCopy := extract(t, f, esp, filepath.Join(dir, "esp.check"))
	if out, err := exec.Command("fsck.vfat", "-n", espCopy).CombinedOutput(); err != nil {
		t.Errorf("fsck.vfat -n: %v\n%s", err, out)
	}
	rootCopy := extract(t, f, root, filepath.Join(dir, "root.check"))
	if out, err := exec.Command("e2fsck", "-fn", rootCopy).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn: %v\n%s", err, out)
	}
	if out, _ := exec.Command("debugfs", "-R", "cat /composefs/marker", rootCopy).Output(); string(out) != "hello" {
		t.Errorf("debugfs cat /composefs/marker = %q", out)
	}
	out, err := exec.Command("blkid", "-p", "-o", "export", rootCopy).Output()
	if err != nil || !strings.Contains(string(out), "TYPE=ext4") || !strings.Contains(string(out), "LABEL=root") {
		t.Errorf("blkid -p root: %v\n%s", err, out)
	}
	if out, _ := exec.Command("debugfs", "-R", "features", rootCopy).Output(); !strings.Contains(string(out), "verity") {
		t.Errorf("root filesystem features lack verity: %s", out)
	}
	fstype, _, _ := blockdev.Probe(io.NewSectionReader(f, esp.Offset(), esp.Bytes()))
	if fstype != "vfat" {
		t.Errorf("blockdev.Probe(ESP) = %q", fstype)
	}
}

func extract(t *testing.T, f *os.File, p Partition, dst string) string {
	t.Helper()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, io.NewSectionReader(f, p.Offset(), p.Bytes())); err != nil {
		t.Fatal(err)
	}
	return dst
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestReadTableRoundTrip(t *testing.T) {
	needTool(t, "sfdisk")
	path := filepath.Join(t.TempDir(), "disk.img")
	f, size, err := Open(path, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := Layout(size, []Partition{{Type: TypeESP, Name: "ESP", Size: 10 << 20}, {Type: TypeRootX86_64, Name: "root"}})
	if err != nil {
		t.Fatal(err)
	}
	tab.Write(f)
	got, err := ReadTable(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.DiskGUID != tab.DiskGUID || got.DiskSize != tab.DiskSize || len(got.Partitions) != 2 || got.Partitions[0] != tab.Partitions[0] || got.Partitions[1] != tab.Partitions[1] {
		t.Errorf("ReadTable = %+v, wrote %+v", got, tab)
	}
	if p, err := got.Find(TypeRootX86_64); err != nil || p.Name != "root" {
		t.Errorf("Find(root) = %+v, %v", p, err)
	}
	if _, err := ReadTable(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("ReadTable of a missing file succeeded")
	}
}

func FuzzParseSfdiskJSON(f *testing.F) {
	f.Add([]byte(`{"partitiontable":{"label":"gpt","id":"C12A7328-F81F-11D2-BA4B-00A0C93EC93B","sectorsize":512,"partitions":[{"start":2048,"size":2048,"type":"C12A7328-F81F-11D2-BA4B-00A0C93EC93B","uuid":"C12A7328-F81F-11D2-BA4B-00A0C93EC93B","name":"ESP"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) { parseSfdiskJSON("fuzz", data) })
}
