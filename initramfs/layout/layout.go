// Package layout names the paths inside a cfsboot initrd that the builder
// writes and the init reads. It is its own package so that the init does not
// link the builder (cpio, compressors) just to know these names.
package layout

// Paths relative to the initrd's root.
const (
	ModulesDir  = "lib/modules"         // kernel modules and LoadOrder
	LoadOrder   = "load.order"          // in ModulesDir: module paths, dependencies first
	CmdlineFile = "etc/cfsboot/cmdline" // extra command line words built into the initrd
	ShellPath   = "bin/sh"              // the debug shell, when the initrd has one
	// ShellUnderSecureBoot, when present, allows the debug shell under UEFI
	// Secure Boot (the initrd is signed inside the UKI, so its presence is
	// the signer's decision).
	ShellUnderSecureBoot = "etc/cfsboot/allow-shell-under-secure-boot"
)
