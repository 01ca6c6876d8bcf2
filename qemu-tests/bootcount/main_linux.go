// Command bootcount is the init of the boot-counting QEMU test's UKIs. It
// prints what systemd-boot told the booted system (the command line and
// the Boot Loader Interface variables LoaderEntrySelected and
// LoaderBootCountPath) in "BOOTCOUNT key: value" lines and powers off; with
// bootcount.fail on the command line it exits instead, so the kernel
// panics and (with panic=N) reboots: a deployment whose boot fails.
package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"cfsboot/internal/efivar"
	"cfsboot/internal/vminit"
)

func report(key, value string) { fmt.Printf("BOOTCOUNT %s: %s\n", key, value) }

func main() {
	if err := vminit.Start(); err != nil {
		report("error", err.Error())
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	report("cmdline", strings.TrimSpace(string(cmdline)))
	if slices.Contains(strings.Fields(string(cmdline)), "bootcount.fail") {
		report("failing", "exiting PID 1")
		os.Exit(1)
	}
	vars := efivar.Open()
	for _, name := range []string{efivar.LoaderEntrySelected, efivar.LoaderBootCountPath} {
		s, err := vars.LoaderString(name)
		if err != nil {
			report(name, err.Error())
			continue
		}
		report(name, s)
	}
	vminit.PowerOff()
}
