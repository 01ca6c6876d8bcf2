// Command cfsboot-init is the PID 1 of a cfsboot initrd: it boots only the
// composefs root whose fs-verity digest the kernel command line names.
package main

import (
	"fmt"
	"os"
	"time"

	"cfsboot/initramfs"
	"cfsboot/internal/efivar"
	"cfsboot/tpm"
)

func main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "cfsboot-init: this is the init of a cfsboot initrd and runs only as PID 1")
		os.Exit(2)
	}
	sys := &initramfs.Linux{}
	boot := initramfs.Boot{
		Sys: sys,
		NewMeasurer: func(c initramfs.Config) (initramfs.Measurer, error) {
			return tpm.NewBootMeasurer(tpm.MeasurerOptions{
				Policy: c.TPM, PCR: c.PCR, ForcePhases: c.MeasurePhases,
				StubMeasured: func() (bool, error) { return efivar.Open().StubMeasuredKernel() },
				Log:          sys.Log, DeviceWait: 2 * time.Second,
			})
		},
	}
	boot.Run()
	// Run returns only if powering off failed; PID 1 must never exit.
	initramfs.Halt()
}
