package oci

import (
	"archive/tar"
	"strings"
	"testing"
)

func bootcLikeLayers(t testing.TB) [][]byte {
	kernel := strings.Repeat("K", 200)
	usr := ent{name: "usr/", typ: tar.TypeDir, mode: 0o755, mtime: 1600000000,
		xattrs: map[string]string{"security.selinux": "system_u:object_r:usr_t:s0", "user.keep": "1"}}
	return [][]byte{
		tarOf(t,
			ent{name: "./", typ: tar.TypeDir, mode: 0o700, mtime: 1},
			usr, dir("usr/lib/"), dir("usr/lib/modules/"), dir("usr/lib/modules/6.12.0/"),
			file("usr/lib/modules/6.12.0/vmlinuz", kernel),
			file("usr/lib/modules/6.12.0/initramfs.img", "initrd"),
			file("usr/lib/modules/6.12.0/linux.efi", "uki"),
			file("usr/lib/modules/6.12.0/linux.addon.efi", "addon"),
			symlink("usr/lib/modules/6.12.0/link.efi", "linux.efi"),
			dir("boot/"), dir("boot/EFI/"), dir("boot/EFI/Linux/"), file("boot/EFI/Linux/os.efi", "esp uki"),
			dir("sysroot/"), dir("sysroot/ostree/"),
			dir("run/"), file("run/stale", strings.Repeat("s", 100)),
			hardlink("usr/lib/runlink", "run/stale"),
			ent{name: "usr/bin", typ: tar.TypeReg, mode: 0o755, body: "ping",
				xattrs: map[string]string{"security.capability": "cap", "user.x": "y", "trusted.t": "z"}},
		),
	}
}

func TestTransforms(t *testing.T) {
	img := imageOfTars(t, bootcLikeLayers(t)...)
	plain, err := Import(img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if plain.Tree.Mode != 0o40700 || len(plain.Tree.Lookup("boot").Children) != 1 {
		t.Errorf("plain import changed the tree")
	}

	oci, err := Import(img, Options{Transform: TransformOCI})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"/ 40755 0:0",
		"/boot 40755 0:0",
		"/boot/EFI 40755 0:0",
		"/boot/EFI/Linux 40755 0:0",
		"/boot/EFI/Linux/os.efi 100644 0:0 n1 \"esp uki\"",
		"/run 40755 0:0",
		"/sysroot 40755 0:0",
		"/sysroot/ostree 40755 0:0",
		"/usr 40755 0:0",
		"/usr/bin 100755 0:0 n1 \"ping\" security.capability=cap",
		"/usr/lib 40755 0:0",
		"/usr/lib/modules 40755 0:0",
		"/usr/lib/modules/6.12.0 40755 0:0",
		"/usr/lib/modules/6.12.0/initramfs.img 100644 0:0 n1 \"initrd\"",
		"/usr/lib/modules/6.12.0/link.efi 120777 0:0 -> linux.efi",
		"/usr/lib/modules/6.12.0/linux.addon.efi 100644 0:0 n1 \"addon\"",
		"/usr/lib/modules/6.12.0/linux.efi 100644 0:0 n1 \"uki\"",
		"/usr/lib/modules/6.12.0/vmlinuz 100644 0:0 n1 \"<200 bytes>\"",
		"/usr/lib/runlink 100644 0:0 n1 \"<100 bytes>\"",
	}, "\n")
	if got := listing(oci.Tree); got != want {
		t.Errorf("OCI transform:\n%s\nwant:\n%s", got, want)
	}
	if oci.Tree.MtimeSec != 1600000000 || oci.Tree.Lookup("run").MtimeSec != 1600000000 {
		t.Errorf("root and /run mtimes %d %d, want /usr's", oci.Tree.MtimeSec, oci.Tree.Lookup("run").MtimeSec)
	}

	keep, err := Import(img, Options{Transform: TransformOCI, KeepUserXattrs: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := listing(keep.Tree); !strings.Contains(got, "/ 40755 0:0 user.keep=1\n") || !strings.Contains(got, "security.capability=cap user.x=y\n") {
		t.Errorf("keep-user-xattrs:\n%s", got)
	}

	boot, err := Import(img, Options{Transform: TransformBoot})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"boot", "sysroot", "run"} {
		n := boot.Tree.Lookup(d)
		if len(n.Children) != 0 || n.MtimeSec != 1600000000 {
			t.Errorf("/%s: %d children, mtime %d; want empty with /usr's mtime", d, len(n.Children), n.MtimeSec)
		}
	}
	if n := boot.Tree.Lookup("boot"); n.MtimeNsec != uint32(testTime.Nanosecond()) {
		t.Errorf("/boot mtime nsec %d: composefs-boot sets only the seconds", n.MtimeNsec)
	}
	if len(boot.Artefacts) != 4 {
		t.Errorf("artefacts %+v: want them found before /boot is emptied", boot.Artefacts)
	}
	digests := map[string]bool{}
	for _, o := range []Options{{}, {Transform: TransformOCI}, {Transform: TransformBoot}} {
		digests[digestOf(t, img, o)] = true
	}
	if len(digests) != 3 {
		t.Errorf("the three transforms gave %d distinct digests", len(digests))
	}
}

func TestTransformErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		entries   []ent
		transform Transform
		want      string
	}{
		{"no usr", []ent{dir("etc/")}, TransformOCI, "no /usr"},
		{"usr symlink", []ent{dir("x/"), symlink("usr", "x")}, TransformOCI, "no /usr"},
		{"run file", []ent{dir("usr/"), file("run", "x")}, TransformOCI, "/run is not a directory"},
		{"no sysroot", []ent{dir("usr/"), dir("boot/")}, TransformBoot, "no /sysroot"},
		{"selinux", []ent{dir("usr/"), dir("boot/"), dir("sysroot/"), dir("etc/"), dir("etc/selinux/"), file("etc/selinux/config", "SELINUXTYPE=targeted")}, TransformBoot, "SELinux"},
	} {
		_, err := Import(imageOfTars(t, tarOf(t, tc.entries...)), Options{Transform: tc.transform})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestBootArtefacts(t *testing.T) {
	res, err := Import(imageOfTars(t, bootcLikeLayers(t)...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range res.Artefacts {
		got = append(got, a.Kind+" "+a.Version+" "+a.Path)
		if a.Digest == "" || a.Size == 0 {
			t.Errorf("%s: no digest or size", a.Path)
		}
	}
	want := "initramfs 6.12.0 /usr/lib/modules/6.12.0/initramfs.img|uki 6.12.0 /usr/lib/modules/6.12.0/linux.efi|" +
		"kernel 6.12.0 /usr/lib/modules/6.12.0/vmlinuz|uki  /boot/EFI/Linux/os.efi"
	if strings.Join(got, "|") != want {
		t.Errorf("artefacts\n%s\nwant\n%s", strings.Join(got, "|"), want)
	}
}
