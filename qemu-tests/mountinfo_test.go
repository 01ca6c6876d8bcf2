package qemutests

import (
	"slices"
	"testing"
)

func TestParseMountInfo(t *testing.T) {
	// The composefs root as the VM shows it: "ro" appears inside
	// "sysroot", so only whole options count.
	line := `31 1 0:27 / / ro,relatime - overlay composefs:0123abcd ro,lowerdir+=/run/cfsboot/image,datadir+=/sysroot/composefs/objects,redirect_dir=on,metacopy=on,verity=require`
	m, err := ParseMountInfo(line)
	if err != nil {
		t.Fatal(err)
	}
	if m.MountPoint != "/" || m.FSType != "overlay" || m.Source != "composefs:0123abcd" {
		t.Errorf("parsed %+v", m)
	}
	if !slices.Equal(m.MountOptions, []string{"ro", "relatime"}) {
		t.Errorf("mount options %q", m.MountOptions)
	}
	if !slices.Contains(m.SuperOptions, "verity=require") || len(m.SuperOptions) != 6 {
		t.Errorf("super options %q", m.SuperOptions)
	}

	rw, err := ParseMountInfo(`31 1 0:27 / / rw,relatime shared:1 master:2 - overlay composefs rw,datadir+=/sysroot/composefs/objects`)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(rw.MountOptions, "ro") || slices.Contains(rw.SuperOptions, "ro") {
		t.Errorf("found ro in a read-write mount: %+v", rw)
	}

	spaced, err := ParseMountInfo(`40 31 253:0 / /mnt/my\040disk rw - ext4 /dev/vda\134x rw`)
	if err != nil {
		t.Fatal(err)
	}
	if spaced.MountPoint != "/mnt/my disk" || spaced.Source != `/dev/vda\x` {
		t.Errorf("escapes not undone: %+v", spaced)
	}

	for _, bad := range []string{"", "31 1 0:27 / / ro", "31 1 0:27 / / ro - overlay", "31 1 - / / ro - overlay composefs ro", "31 1 0:27 / / ro - overlay composefs ro extra"} {
		if _, err := ParseMountInfo(bad); err == nil {
			t.Errorf("ParseMountInfo(%q) accepted", bad)
		}
	}
}

// FuzzParseMountInfo: any line parses or is refused, never panics, and a
// parsed line has every field.
func FuzzParseMountInfo(f *testing.F) {
	f.Add(`31 1 0:27 / / ro,relatime - overlay composefs ro,lowerdir+=/run/cfsboot/image,verity=require`)
	f.Add(`40 31 253:0 / /mnt/my\040disk rw shared:1 - ext4 /dev/vda\134 rw`)
	f.Add(`1 2 3 4 5 \0 - a b \12`)
	f.Fuzz(func(t *testing.T, line string) {
		m, err := ParseMountInfo(line)
		if err != nil {
			return
		}
		if m.MountPoint == "" || m.FSType == "" || len(m.MountOptions) == 0 || len(m.SuperOptions) == 0 {
			t.Errorf("ParseMountInfo(%q) = %+v without error", line, m)
		}
	})
}
