// Package initramfs is the boot sequence of cfsboot-init, the verifying
// PID 1: early mounts, kernel modules, the root device, the composefs image
// check against the command line, the overlay root, /etc and /var state,
// TPM measurements and switch_root. On any failure it never boots the
// root.
//
// Console lines (stable; the QEMU tests match them):
//
//	cfsboot: stage <name>
//	cfsboot: composefs image <digest> verified
//	cfsboot: switching to <init>
//	cfsboot: FAILED at stage <name>: <what was expected, what was found>
//	cfsboot: starting debug shell
//	cfsboot: powering off | cfsboot: rebooting in <n>s
package initramfs

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"cfsboot/verity"
)

// Stage names, in boot order; rd.break= takes one of them.
const (
	StageEarly   = "early"
	StageCmdline = "cmdline"
	StageModules = "modules"
	StageRoot    = "root"
	StageVerify  = "verify"
	StageMount   = "mount"
	StageState   = "state"
	StageSwitch  = "switch"
)

var stages = []string{StageEarly, StageCmdline, StageModules, StageRoot, StageVerify, StageMount, StageState, StageSwitch}

// TPM policies (rd.cfsboot.tpm=).
const (
	TPMAuto    = "auto"
	TPMRequire = "require"
	TPMOff     = "off"
)

// Config is what the kernel command line asks of the init.
type Config struct {
	Digest        verity.Digest // composefs=: the only image this init boots
	Root          string        // root=: UUID=, PARTUUID=, LABEL= or /dev/...
	RootFSType    string        // rootfstype=
	RootFlags     string        // rootflags=
	ReadOnly      bool          // ro (physical root read-only: /etc and /var become volatile)
	Init          string        // init=
	RootTimeout   time.Duration // rd.timeout=
	Shell         bool          // rd.shell
	Break         string        // rd.break=<stage>
	PanicDelay    int           // panic=<seconds>: reboot after a failure instead of powering off
	Store         string        // rd.cfsboot.store=: the store's path on the root device
	State         string        // rd.cfsboot.state=: the state directory on the root device
	TPM           string        // rd.cfsboot.tpm=
	PCR           int           // rd.cfsboot.pcr=
	MeasurePhases bool          // rd.cfsboot.measure-phases=
}

// DefaultConfig holds the values of keys the command line leaves out.
func DefaultConfig() Config {
	return Config{
		RootTimeout: 30 * time.Second,
		Store:       "composefs",
		State:       "state",
		TPM:         TPMAuto,
		PCR:         15,
	}
}

// ParseCmdline reads the words of a kernel command line (and any words the
// initrd supplies before it; later words win). Unknown keys belong to the
// kernel or the booted system and are ignored; malformed values of keys we
// own are errors, never guesses.
func ParseCmdline(words []string) (Config, error) {
	c := DefaultConfig()
	haveDigest := false
	for _, w := range words {
		key, value, hasValue := strings.Cut(w, "=")
		var err error
		switch key {
		case "composefs":
			c.Digest, err = verity.ParseDigest(value)
			haveDigest = err == nil
		case "root":
			c.Root, err = nonEmpty(value)
		case "rootfstype":
			c.RootFSType, err = nonEmpty(value)
		case "rootflags":
			c.RootFlags = value
		case "ro":
			c.ReadOnly, err = true, noValue(hasValue)
		case "rw":
			c.ReadOnly, err = false, noValue(hasValue)
		case "init":
			if !strings.HasPrefix(value, "/") {
				err = fmt.Errorf("want an absolute path")
			}
			c.Init = value
		case "rd.timeout":
			var secs int
			if secs, err = strconv.Atoi(value); err == nil && secs <= 0 {
				err = fmt.Errorf("want a positive number of seconds")
			}
			c.RootTimeout = time.Duration(secs) * time.Second
		case "rd.shell":
			c.Shell, err = flag(value, hasValue)
		case "rd.break":
			c.Break, err = stageName(value)
		case "panic":
			c.PanicDelay, err = strconv.Atoi(value)
		case "rd.cfsboot.store":
			c.Store, err = relativePath(value)
		case "rd.cfsboot.state":
			c.State, err = relativePath(value)
		case "rd.cfsboot.tpm":
			c.TPM = value
			if value != TPMAuto && value != TPMRequire && value != TPMOff {
				err = fmt.Errorf("want %s, %s or %s", TPMAuto, TPMRequire, TPMOff)
			}
		case "rd.cfsboot.pcr":
			if c.PCR, err = strconv.Atoi(value); err == nil && (c.PCR < 0 || c.PCR > 23) {
				err = fmt.Errorf("want a PCR index 0..23")
			}
		case "rd.cfsboot.measure-phases":
			c.MeasurePhases, err = flag(value, hasValue)
		default:
			if strings.HasPrefix(key, "rd.cfsboot.") {
				err = fmt.Errorf("unknown cfsboot option")
			}
		}
		if err != nil {
			return c, fmt.Errorf("kernel command line: %s: %w", w, err)
		}
	}
	if !haveDigest {
		return c, fmt.Errorf("kernel command line: composefs=<64 hex digits> is required: this init boots only a verified composefs root")
	}
	if c.Root == "" {
		return c, fmt.Errorf("kernel command line: root= is required (UUID=, PARTUUID=, LABEL= or a /dev path)")
	}
	return c, nil
}

func nonEmpty(v string) (string, error) {
	if v == "" {
		return v, fmt.Errorf("empty value")
	}
	return v, nil
}

func noValue(hasValue bool) error {
	if hasValue {
		return fmt.Errorf("takes no value")
	}
	return nil
}

// flag parses "key" (true) or key=0/1/yes/no/true/false.
func flag(v string, hasValue bool) (bool, error) {
	if !hasValue {
		return true, nil
	}
	switch v {
	case "1", "yes", "true", "on":
		return true, nil
	case "0", "no", "false", "off":
		return false, nil
	}
	return false, fmt.Errorf("want 0 or 1")
}

func stageName(v string) (string, error) {
	for _, s := range stages {
		if s == v {
			return v, nil
		}
	}
	return "", fmt.Errorf("unknown stage (stages: %s)", strings.Join(stages, ", "))
}

// relativePath accepts a path below the root device's top directory.
func relativePath(v string) (string, error) {
	v = strings.Trim(v, "/")
	if v == "" {
		return v, fmt.Errorf("empty path")
	}
	for _, c := range strings.Split(v, "/") {
		if c == "" || c == "." || c == ".." {
			return v, fmt.Errorf("want a plain relative path without . or ..")
		}
	}
	return v, nil
}

// SplitCmdline splits /proc/cmdline into words, honouring double quotes as
// the kernel does (quotes group, and are dropped).
func SplitCmdline(s string) []string {
	var words []string
	var cur strings.Builder
	inQuote, inWord := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			inWord = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}
