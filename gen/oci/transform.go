package oci

import (
	"fmt"
	"slices"
	"strings"

	"cfsboot/gen/tree"
)

// Transform is a set of changes composefs-rs (cfsctl) and bootc make to an
// OCI image's tree before computing its composefs digest.
type Transform int

const (
	// TransformNone keeps the tree exactly as the layers made it: the tree
	// `umoci unpack` writes, as `mkcomposefs` of it would see it.
	TransformNone Transform = iota
	// TransformOCI is composefs-rs's transform_for_oci, which cfsctl applies
	// to every OCI image:
	//   - the root directory takes /usr's mode, owner, mtime and xattrs
	//     (layers rarely carry a "./" entry, so the root is otherwise
	//     arbitrary); /usr must exist;
	//   - /run, if present, is emptied and takes /usr's mtime;
	//   - every xattr except security.capability is dropped (with
	//     KeepUserXattrs, user.* xattrs are kept too); this also removes
	//     the build host's security.selinux labels.
	TransformOCI
	// TransformBoot is TransformOCI followed by composefs-boot's
	// transform_for_boot, which bootc applies before it computes the
	// digest it puts on the kernel command line:
	//   - /boot and /sysroot (both required) are emptied and take /usr's
	//     mtime seconds (their nanoseconds stay);
	//   - SELinux: when /etc/selinux/config names a SELINUXTYPE, every
	//     inode gets the security.selinux label of
	//     /etc/selinux/<type>/contexts/files/file_contexts (then .local and
	//     .homedirs; the last matching line wins; "<<none>>" means no
	//     label), matched against its absolute path and type, with exact
	//     path aliases from file_contexts.subs and .subs_dist; a hard link
	//     whose names get different labels is split. Without a policy the
	//     labels stay removed. Regexes Go's RE2 cannot compile (PCRE
	//     lookarounds) are an error rather than a wrong digest.
	// Files only reachable from the emptied directories disappear; hard
	// link counts are those of the remaining tree.
	TransformBoot
)

// transform applies t to the applied layers.
func (fs *rootfs) transform(t Transform, keepUserXattrs bool) error {
	usrEntry := fs.root.ino.children["usr"]
	if usrEntry == nil || !usrEntry.ino.isDir() {
		return fmt.Errorf("composefs-rs transform: no /usr directory to take the root's metadata from")
	}
	usr := usrEntry.ino.meta
	root := &fs.root.ino.meta
	root.Mode, root.UID, root.GID = usr.Mode, usr.UID, usr.GID
	root.MtimeSec, root.MtimeNsec = usr.MtimeSec, usr.MtimeNsec
	root.Xattrs = slices.Clone(usr.Xattrs)
	if run := fs.root.ino.children["run"]; run != nil {
		if !run.ino.isDir() {
			return fmt.Errorf("composefs-rs transform: /run is not a directory")
		}
		run.ino.children = map[string]*dirEntry{}
		run.ino.meta.MtimeSec, run.ino.meta.MtimeNsec = usr.MtimeSec, usr.MtimeNsec
	}
	fs.filterXattrs(fs.root.ino, keepUserXattrs, map[*inode]bool{})
	if t != TransformBoot {
		return nil
	}
	for _, name := range []string{"boot", "sysroot"} {
		d := fs.root.ino.children[name]
		if d == nil || !d.ino.isDir() {
			return fmt.Errorf("bootable transform: no /%s directory", name)
		}
		d.ino.children = map[string]*dirEntry{}
		d.ino.meta.MtimeSec = usr.MtimeSec
	}
	policy, err := fs.loadSELinuxPolicy()
	if err != nil {
		return fmt.Errorf("bootable transform: SELinux: %w", err)
	}
	if policy != nil {
		fs.selabel(policy)
	}
	return nil
}

// filterXattrs keeps security.capability (and user.* when asked) on every
// inode once.
func (fs *rootfs) filterXattrs(dir *inode, keepUser bool, seen map[*inode]bool) {
	keep := func(x tree.Xattr) bool {
		return x.Key == "security.capability" || (keepUser && strings.HasPrefix(x.Key, "user."))
	}
	filter := func(i *inode) {
		if seen[i] {
			return
		}
		seen[i] = true
		i.meta.Xattrs = slices.DeleteFunc(i.meta.Xattrs, func(x tree.Xattr) bool { return !keep(x) })
	}
	filter(dir)
	for _, e := range dir.children {
		if e.ino.isDir() {
			fs.filterXattrs(e.ino, keepUser, seen)
		} else {
			filter(e.ino)
		}
	}
}
