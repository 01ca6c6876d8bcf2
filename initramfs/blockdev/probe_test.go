package blockdev

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// blkid returns blkid's view of a file (the oracle).
func blkid(t *testing.T, path string, probe bool) map[string]string {
	t.Helper()
	args := []string{"-o", "export", path}
	if probe {
		args = append([]string{"-p"}, args...)
	}
	out, err := exec.Command("blkid", args...).Output()
	if err != nil {
		t.Fatalf("blkid %s: %v", path, err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

func mkfs(t *testing.T, tool string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s not installed", tool)
	}
	img := filepath.Join(t.TempDir(), "fs.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 320<<20); err != nil { // sparse; XFS wants 300 MB
		t.Fatal(err)
	}
	if out, err := exec.Command(tool, append(args, img)...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", tool, err, out)
	}
	return img
}

func TestProbeAgainstBlkid(t *testing.T) {
	for name, c := range map[string]struct {
		tool string
		args []string
	}{
		"ext4": {"mkfs.ext4", []string{"-q", "-F", "-L", "cfsroot", "-U", "6f1c4a52-86b3-4c53-9d7a-0a3e1b2c3d4e"}},
		"ext2": {"mkfs.ext2", []string{"-q", "-F", "-L", "old"}},
		"vfat": {"mkfs.vfat", []string{"-n", "EFI", "-i", "1234ABCD"}},
		"xfs":  {"mkfs.xfs", []string{"-q", "-L", "data"}},
	} {
		t.Run(name, func(t *testing.T) {
			img := mkfs(t, c.tool, c.args...)
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fstype, uuid, label := Probe(f)
			want := blkid(t, img, true)
			if fstype != want["TYPE"] || !strings.EqualFold(uuid, want["UUID"]) || label != want["LABEL"] {
				t.Fatalf("probe: %s %s %q; blkid: %v", fstype, uuid, label, want)
			}
		})
	}
}

func TestGPTAgainstBlkid(t *testing.T) {
	if _, err := exec.LookPath("sfdisk"); err != nil {
		t.Skip("sfdisk not installed")
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	os.WriteFile(img, nil, 0o644)
	os.Truncate(img, 16<<20)
	cmd := exec.Command("sfdisk", "-q", img)
	cmd.Stdin = strings.NewReader("label: gpt\nsize=4MiB, name=esp, uuid=0FC63DAF-8483-4772-8E79-3D69D8477DE4\nname=root\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parts, err := ReadGPT(f, 512)
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
	raw, _ := os.ReadFile(img)
	raw[512+40] ^= 1
	bad := filepath.Join(t.TempDir(), "bad.img")
	os.WriteFile(bad, raw, 0o644)
	bf, _ := os.Open(bad)
	defer bf.Close()
	if _, err := ReadGPT(bf, 512); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("corrupt GPT: %v", err)
	}
}

func TestProbeGarbage(t *testing.T) {
	for _, size := range []int{0, 100, 1100, 70000} {
		if fstype, _, _ := Probe(strings.NewReader(strings.Repeat("\xff", size))); fstype != "" {
			t.Errorf("%d bytes of garbage probed as %s", size, fstype)
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
