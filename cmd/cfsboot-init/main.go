// Command cfsboot-init is the PID 1 of a cfsboot initrd: it boots only the
// composefs root whose fs-verity digest the kernel command line names.
package main

import (
	"fmt"
	"os"

	"cfsboot/initramfs"
)

func main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "cfsboot-init: this is the init of a cfsboot initrd and runs only as PID 1")
		os.Exit(2)
	}
	boot := initramfs.Boot{
		Sys: &initramfs.Linux{},
		NewMeasurer: func(initramfs.Config) (initramfs.Measurer, error) {
			return initramfs.NopMeasurer{}, nil
		},
	}
	boot.Run()
	// Run returns only if powering off failed; PID 1 must never exit.
	select {}
}
