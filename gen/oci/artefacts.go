package oci

import (
	"path"
	"strings"

	"cfsboot/gen/tree"
)

// BootArtefact is a kernel, initrd or UKI a bootable image carries.
type BootArtefact struct {
	Kind    string `json:"kind"`              // "kernel", "initramfs" or "uki"
	Path    string `json:"path"`              // absolute path in the image
	Version string `json:"version,omitempty"` // kernel version (the modules directory name)
	Size    uint64 `json:"size"`
	Digest  string `json:"digest,omitempty"` // fs-verity digest of the content
}

// FindBootArtefacts lists what bootc looks for: in /usr/lib/modules/<ver>/
// the kernel "vmlinuz", the initrd "initramfs.img" and UKIs "*.efi", and
// UKIs in /boot/EFI/Linux. Only regular files (or hard links to them)
// count; symlinks are not followed.
func FindBootArtefacts(root *tree.Node) []BootArtefact {
	var found []BootArtefact
	add := func(kind, version string, n *tree.Node) {
		t := n.Target()
		if t.Mode&tree.SIFMT != tree.SIFREG {
			return
		}
		a := BootArtefact{Kind: kind, Path: n.Path(), Version: version, Size: t.Size}
		if t.Digest != nil {
			a.Digest = t.Digest.String()
		}
		found = append(found, a)
	}
	if modules := lookupPath(root, "usr/lib/modules"); modules != nil {
		for _, ver := range modules.Children {
			if !ver.IsDir() {
				continue
			}
			for _, f := range ver.Children {
				switch {
				case f.Name == "vmlinuz":
					add("kernel", ver.Name, f)
				case f.Name == "initramfs.img":
					add("initramfs", ver.Name, f)
				case isUKI(f.Name):
					add("uki", ver.Name, f)
				}
			}
		}
	}
	if esp := lookupPath(root, "boot/EFI/Linux"); esp != nil {
		for _, f := range esp.Children {
			if isUKI(f.Name) {
				add("uki", "", f)
			}
		}
	}
	return found
}

// isUKI matches "*.efi" but not systemd-stub add-ons ("*.addon.efi").
func isUKI(name string) bool {
	return strings.HasSuffix(name, ".efi") && !strings.HasSuffix(name, ".addon.efi")
}

// lookupPath walks real directories (no symlinks, no hard links) to p.
func lookupPath(root *tree.Node, p string) *tree.Node {
	n := root
	for _, name := range strings.Split(path.Clean(p), "/") {
		if n = n.Lookup(name); n == nil || n.LinkTo != nil || n.Mode&tree.SIFMT != tree.SIFDIR {
			return nil
		}
	}
	return n
}
