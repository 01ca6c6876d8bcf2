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

	"golang.org/x/sys/unix"

	"cfsboot/internal/efivar"
	"cfsboot/initramfs/layout"
	"cfsboot/initramfs/modload"
)

func report(key, value string) { fmt.Printf("BOOTCOUNT %s: %s\n", key, value) }

func main() {
	for _, m := range [][3]string{{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}} {
		os.MkdirAll(m[1], 0o755)
		unix.Mount(m[0], m[1], m[2], 0, "")
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	report("cmdline", strings.TrimSpace(string(cmdline)))
	if slices.Contains(strings.Fields(string(cmdline)), "bootcount.fail") {
		report("failing", "exiting PID 1")
		os.Exit(1)
	}
	if _, err := modload.LoadAll("/" + layout.ModulesDir); err != nil {
		report("error", err.Error())
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
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}
