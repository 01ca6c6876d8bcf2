package deploy

import (
	"strings"
	"testing"
)

const digestA = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestRootDigest(t *testing.T) {
	mi := `22 1 0:21 / / ro,relatime shared:1 - overlay composefs:` + digestA + ` ro,lowerdir+=/run/x,datadir+=/sysroot/composefs/objects,redirect_dir=on,metacopy=on,verity=require
23 22 0:22 / /proc rw - proc proc rw
24 22 8:2 / /sysroot rw - ext4 /dev/vda2 rw
`
	d, err := RootDigest(strings.NewReader(mi))
	if err != nil || d == nil || d.String() != digestA {
		t.Fatalf("RootDigest = %v, %v", d, err)
	}
	// A plain root, and a composefs root hidden by a later mount at /.
	for _, s := range []string{
		"1 0 8:1 / / rw - ext4 /dev/sda1 rw\n",
		"22 1 0:21 / / ro - overlay composefs:" + digestA + " ro\n30 22 0:30 / / rw - tmpfs tmpfs rw\n",
	} {
		if d, err := RootDigest(strings.NewReader(s)); err != nil || d != nil {
			t.Errorf("RootDigest(%q) = %v, %v; want none", s, d, err)
		}
	}
	if _, err := RootDigest(strings.NewReader("22 1 0:21 / / ro - overlay composefs:zz ro\n")); err == nil {
		t.Error("a malformed composefs: source was accepted")
	}
}

func FuzzRootDigest(f *testing.F) {
	f.Add("22 1 0:21 / / ro - overlay composefs:" + digestA + " ro\n")
	f.Add("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n")
	f.Fuzz(func(t *testing.T, s string) { RootDigest(strings.NewReader(s)) })
}
