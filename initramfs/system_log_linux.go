package initramfs

import (
	"os"
	"strconv"
)

// Kernel log levels of the lines written to /dev/kmsg.
const (
	kmsgDebug = 7
	kmsgCrit  = 2
)

func (s *Linux) openKmsg() {
	if f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
		s.kmsg = f
	}
	if f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
		s.kmsgCrit = f
	}
}

// Log reports progress on the console (PID 1's stdout) unless quiet, and
// at debug level in the kernel log, so the kernel does not print it on
// the console a second time.
func (s *Linux) Log(msg string) {
	if !s.quiet {
		os.Stdout.WriteString("cfsboot: " + msg + "\n")
	}
	writeKmsg(s.kmsg, kmsgDebug, msg)
}

// Critical reports failures and refusals on the console even with quiet,
// and at crit level in the kernel log, where journald and a console with a
// low loglevel keep them. The console copy is the one to rely on: the
// kernel rate-limits /dev/kmsg writers.
func (s *Linux) Critical(msg string) {
	os.Stdout.WriteString("cfsboot: " + msg + "\n")
	writeKmsg(s.kmsgCrit, kmsgCrit, msg)
}

// writeKmsg writes one record (one write), without fmt: PID 1 logs on
// every stage, and under emulation every code path run costs.
func writeKmsg(f *os.File, level int, msg string) {
	if f != nil {
		f.WriteString("<" + strconv.Itoa(level) + ">cfsboot: " + msg + "\n")
	}
}
