// Package layout names the paths inside a cfsboot initrd that the builder
// writes and the init reads. It is its own package so that the init does not
// link the builder (cpio, compressors) just to know these names.
package layout

// Paths relative to the initrd's root.
const (
	ModulesDir = "lib/modules" // kernel modules and LoadOrder
	LoadOrder  = "load.order"  // in ModulesDir: module paths, dependencies first
	// LoadRules, in ModulesDir, says when each module loads by itself
	// (always, under UEFI, or for a device whose modalias matches one of
	// its aliases) and what it depends on; modload reads and writes it.
	LoadRules   = "load.rules"
	CmdlineFile = "etc/cfsboot/cmdline" // extra command line words built into the initrd
	ShellPath   = "bin/sh"              // the debug shell, when the initrd has one
	// ShellUnderSecureBoot, when present, allows the debug shell under UEFI
	// Secure Boot (the initrd is signed inside the UKI, so its presence is
	// the signer's decision).
	ShellUnderSecureBoot = "etc/cfsboot/allow-shell-under-secure-boot"
	// AllowInsecure, when present, lets the init boot a command line entry
	// with the '?' prefix (composefs.digest=?..., composefs=?...): the
	// image and its objects need no fs-verity, and the boot is measured as
	// composefs-insecure:<hex>. Without it such an entry is refused.
	AllowInsecure = "etc/cfsboot/allow-insecure"
	// SetupRootConf is composefs-setup-root's configuration (package
	// setuproot), at the path composefs-rs and bootc read it from.
	SetupRootConf = "usr/lib/composefs/setup-root-conf.toml"
)
