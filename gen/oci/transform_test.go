package oci

import (
	"archive/tar"
	"strings"
	"testing"

	"cfsboot/gen/tree"
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
		{"selinux without file_contexts", []ent{dir("usr/"), dir("boot/"), dir("sysroot/"), dir("etc/"), dir("etc/selinux/"), file("etc/selinux/config", "SELINUXTYPE=targeted")}, TransformBoot, "has no /etc/selinux/targeted/contexts/files/file_contexts"},
		{"selinux config symlink", []ent{dir("usr/"), dir("boot/"), dir("sysroot/"), dir("etc/"), dir("etc/selinux/"), symlink("etc/selinux/config", "/x")}, TransformBoot, "not a regular file"},
		{"selinux lookaround", append(selinuxPolicyEntries("/x(?=y)\tsystem_u:object_r:x_t:s0\n"), dir("usr/"), dir("boot/"), dir("sysroot/")), TransformBoot, "file_contexts: line 1"},
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

// selinuxPolicyEntries are the entries of a "targeted" policy whose
// file_contexts holds specs.
func selinuxPolicyEntries(specs string) []ent {
	return []ent{
		dir("etc/"), dir("etc/selinux/"),
		file("etc/selinux/config", "# This file controls the state of SELinux on the system.\nSELINUX=enforcing\nSELINUXTYPE=targeted\n"),
		dir("etc/selinux/targeted/"), dir("etc/selinux/targeted/contexts/"), dir("etc/selinux/targeted/contexts/files/"),
		file("etc/selinux/targeted/contexts/files/file_contexts", specs),
	}
}

// The bootable transform labels the tree from the image's own policy, as
// composefs-boot's selabel does.
func TestSELinuxLabels(t *testing.T) {
	specs := strings.Join([]string{
		"# comment",
		"/.*\tsystem_u:object_r:default_t:s0",
		"/usr(/.*)?\tsystem_u:object_r:usr_t:s0",
		"/usr/bin(/.*)?\tsystem_u:object_r:bin_t:s0",
		"/usr/bin/special\t--\tsystem_u:object_r:special_exec_t:s0",
		"/usr/lib/link\t-l\tsystem_u:object_r:link_t:s0",
		"/etc(/.*)?\tsystem_u:object_r:etc_t:s0",
		"/tmp\t-d\t<<none>>",
		"/home\t-d\tsystem_u:object_r:home_root_t:s0",
		"/home/[^/]+\t-d\tsystem_u:object_r:user_home_dir_t:s0",
		"/(boot|sysroot)\t-d\tsystem_u:object_r:boot_t:s0",
		"/dev/null\t-c\tsystem_u:object_r:null_device_t:s0",
		"",
	}, "\n")
	entries := append(selinuxPolicyEntries(specs),
		file("etc/selinux/targeted/contexts/files/file_contexts.local", "/usr/bin/other\t--\tsystem_u:object_r:later_t:s0\n"),
		file("etc/selinux/targeted/contexts/files/file_contexts.subs", "/var/home /home\n"),
		ent{name: "usr/", typ: tar.TypeDir, mode: 0o755, xattrs: map[string]string{"security.selinux": "host_label"}},
		dir("usr/bin/"), dir("usr/lib/"),
		file("usr/bin/special", "s"), file("usr/bin/other", "o"),
		file("usr/bin/ln1", strings.Repeat("l", 100)), hardlink("etc/ln2", "usr/bin/ln1"),
		hardlink("usr/bin/ln3", "usr/bin/ln1"),
		file("usr/bin/same", strings.Repeat("s", 100)), hardlink("usr/bin/same2", "usr/bin/same"),
		symlink("usr/lib/link", "x"), file("usr/lib/x", "x"),
		dir("tmp/"), dir("var/"), dir("var/home/"), dir("var/home/alice/"),
		dir("boot/"), dir("sysroot/"), dir("dev/"),
		ent{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3},
	)
	res, err := Import(imageOfTars(t, tarOf(t, entries...)), Options{Transform: TransformBoot})
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{}
	res.Tree.Walk(func(n *tree.Node) error {
		t := n.Target()
		for _, x := range t.Xattrs {
			if x.Key == "security.selinux" {
				labels[n.Path()] = string(x.Value)
			}
		}
		return nil
	})
	for path, want := range map[string]string{
		"/":                   "system_u:object_r:default_t:s0",
		"/usr":                "system_u:object_r:usr_t:s0",
		"/usr/bin":            "system_u:object_r:bin_t:s0",
		"/usr/bin/special":    "system_u:object_r:special_exec_t:s0",
		"/usr/bin/other":      "system_u:object_r:later_t:s0",
		"/usr/bin/ln1":        "system_u:object_r:bin_t:s0",
		"/usr/bin/ln3":        "system_u:object_r:bin_t:s0",
		"/etc/ln2":            "system_u:object_r:etc_t:s0",
		"/usr/lib/link":       "system_u:object_r:link_t:s0",
		"/usr/lib/x":          "system_u:object_r:usr_t:s0",
		"/tmp":                "",
		"/var/home":           "system_u:object_r:home_root_t:s0",
		"/var/home/alice":     "system_u:object_r:user_home_dir_t:s0",
		"/boot":               "system_u:object_r:boot_t:s0",
		"/dev/null":           "system_u:object_r:null_device_t:s0",
		"/etc/selinux/config": "system_u:object_r:etc_t:s0",
	} {
		if got := labels[path]; got != want {
			t.Errorf("%s: label %q, want %q", path, got, want)
		}
	}
	// As in composefs-boot: /etc/ln2 comes first in the walk and keeps the
	// inode; ln1 and ln3, labelled otherwise, each get a copy. same and
	// same2 share their label and their inode.
	bin := res.Tree.Lookup("usr").Lookup("bin")
	ln1, ln3, ln2 := bin.Lookup("ln1"), bin.Lookup("ln3"), res.Tree.Lookup("etc").Lookup("ln2")
	if ln1.LinkTo != nil || ln2.LinkTo != nil || ln3.LinkTo != nil || ln1.Nlink != 1 || ln2.Nlink != 1 || ln3.Nlink != 1 {
		t.Errorf("split hard links: ln1 n%d %v, ln2 n%d %v, ln3 n%d %v", ln1.Nlink, ln1.LinkTo != nil, ln2.Nlink, ln2.LinkTo != nil, ln3.Nlink, ln3.LinkTo != nil)
	}
	if same, same2 := bin.Lookup("same"), bin.Lookup("same2"); same2.LinkTo != same || same.Nlink != 2 {
		t.Errorf("same-label hard links: same n%d, same2 links to same: %v", same.Nlink, same2.LinkTo == same)
	}

	// A config without SELINUXTYPE: no policy, no labels.
	res, err = Import(imageOfTars(t, tarOf(t, dir("usr/"), dir("boot/"), dir("sysroot/"), dir("etc/"), dir("etc/selinux/"),
		ent{name: "etc/selinux/config", typ: tar.TypeReg, mode: 0o644, body: "SELINUX=disabled\n",
			xattrs: map[string]string{"security.selinux": "host_label"}})), Options{Transform: TransformBoot})
	if err != nil {
		t.Fatal(err)
	}
	if got := listing(res.Tree); strings.Contains(got, "selinux=") {
		t.Errorf("labels without a policy:\n%s", got)
	}
}

func TestLiterals(t *testing.T) {
	for re, want := range map[string][2]string{
		"/usr/bin/foo":       {"/usr/bin/foo", "/usr/bin/foo"},
		"/usr(/.*)?":         {"/usr", "/usr"},
		"/usr/lib64?/x":      {"/usr/lib6", "/usr/lib6"},
		`/etc/foo\.conf`:     {"/etc/foo.conf", "/etc/foo.conf"},
		"/a|/b":              {"", ""},
		"/(a|b)":             {"/", "/"},
		"/x[|]y":             {"/x", "/x"},
		"/x[]|]y":            {"", ""}, // taken for an alternative: no index, never wrong
		"/x[^]a]bcd":         {"/x", "bcd"},
		`/x[\]]bcd`:          {"/x", "bcd"},
		"/lib/modules/[^/]+": {"/lib/modules/", "/lib/modules/"},
		`/v\d+abc`:           {"/v", "abc"},
		"/x{2}":              {"/", "/"},
		"/x[0-9]{12}yzw":     {"/x", "yzw"},
		"/(.*/)?name5":       {"/", "name5"},
		"/tm+p":              {"/tm", "/tm"},
		"(/.*)?/sbin/foo":    {"", "/sbin/foo"},
	} {
		if prefix, longest := literals(re); prefix != want[0] || longest != want[1] {
			t.Errorf("literals(%q) = %q, %q, want %q, %q", re, prefix, longest, want[0], want[1])
		}
	}
}
