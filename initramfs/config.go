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
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"cfsboot/initramfs/layout"
	"cfsboot/initramfs/setuproot"
)

// Stage names, in boot order.
const (
	StageEarly   = "early"
	StageCmdline = "cmdline"
	StageModules = "modules"
	StageTPM     = "tpm" // the TPM opened, enter-initrd measured
	StageRoot    = "root"
	StageVerify  = "verify"
	StageMount   = "mount"
	StageState   = "state"
	StageSwitch  = "switch"
)

// breakStages are the stages rd.break= can stop before: those after the
// command line has been read (early and cmdline run before the init knows
// it was asked to break).
var breakStages = []string{StageModules, StageTPM, StageRoot, StageVerify, StageMount, StageState, StageSwitch}

// TPM policies (rd.cfsboot.tpm=).
const (
	TPMAuto    = "auto"
	TPMRequire = "require"
	TPMOff     = "off"
)

// /etc policies (rd.cfsboot.etc=); unset, the setup-root configuration
// decides (overlay by default, which is persistent).
const (
	EtcPersistent = "persistent" // the /etc upper layer lives on the state directory
	EtcTransient  = "transient"  // the /etc upper layer lives in memory
)

// Where /var's state lives (rd.cfsboot.var=).
const (
	VarDeploy = "deploy" // state/deploy/<image>/var, as composefs-setup-root and bootc have it
	VarShared = "shared" // state/var, one /var for every image (cfsboot's first layout)
)

// Limits of numeric values: large enough for any real use, small enough
// that no arithmetic on them overflows.
const (
	maxTimeoutSeconds = 3600
	maxPanicSeconds   = 86400
	maxPCR            = 23
)

// Config is what the kernel command line asks of the init.
type Config struct {
	// Images are the composefs images the command line names, in the
	// order to try them (ComposefsArgs): the first one in the store boots.
	Images        []ComposefsArg
	Root          string        // root=: UUID=, PARTUUID=, LABEL= or /dev/...
	RootFSType    string        // rootfstype=
	RootFlags     string        // rootflags=
	ReadOnly      bool          // ro (physical root read-only: /etc and /var become volatile)
	Init          string        // init=
	RootTimeout   time.Duration // rd.timeout=
	Shell         bool          // rd.shell
	Break         string        // rd.break=<stage>
	Reboot        bool          // panic=<seconds> (nonzero): reboot after a failure instead of powering off
	PanicDelay    int           // seconds to wait before that reboot (panic=<negative> reboots at once)
	Store         string        // rd.cfsboot.store=: the store's path on the root device
	State         string        // rd.cfsboot.state=: the state directory on the root device
	TPM           string        // rd.cfsboot.tpm=
	PCR           int           // rd.cfsboot.pcr=
	MeasurePhases bool          // rd.cfsboot.measure-phases=
	Etc           string        // rd.cfsboot.etc= ("" when unset)
	Var           string        // rd.cfsboot.var=
	// Setup is the initrd's composefs-setup-root configuration (not from
	// the command line: the Boot reads it with the initrd's other files).
	Setup setuproot.Config
}

// EtcMount is how /etc is set up: rd.cfsboot.etc= when given, else the
// setup-root configuration's (overlay by default).
func (c Config) EtcMount() setuproot.MountType {
	switch c.Etc {
	case EtcTransient:
		return setuproot.Transient
	case EtcPersistent:
		return setuproot.Overlay
	}
	return c.Setup.EtcMount()
}

// DefaultConfig holds the values of keys the command line leaves out.
func DefaultConfig() Config {
	return Config{
		RootTimeout: 30 * time.Second,
		Store:       "composefs",
		State:       "state",
		TPM:         TPMAuto,
		PCR:         15,
		Var:         VarDeploy,
	}
}

// ParseCmdline reads the words of a kernel command line (and any words the
// initrd supplies before it; later words win). Unknown keys belong to the
// kernel or the booted system and are ignored; malformed values of keys we
// own are errors, never guesses.
func ParseCmdline(words []string) (Config, error) {
	c := DefaultConfig()
	if _, err := parseWords(&c, words); err != nil {
		return c, err
	}
	var err error
	c.Images, err = ComposefsArgs(words)
	if errors.Is(err, ErrNoComposefsArg) {
		return c, fmt.Errorf("kernel command line: composefs.digest=v1-sha512-12:<hex> (or sha256) or composefs=<64 or 128 hex digits> is required: this init boots only a verified composefs root")
	}
	if err != nil {
		return c, err
	}
	if c.Root == "" {
		return c, fmt.Errorf("kernel command line: root= is required (UUID=, PARTUUID=, LABEL= or a /dev path)")
	}
	return c, nil
}

// lockedKeys are the security settings the initrd's own command line (signed
// inside the UKI) fixes: the kernel command line (editable in the boot
// loader) may repeat them but not change them.
var lockedKeys = map[string]func(Config) any{
	KeyComposefs:       imagesWords,
	KeyComposefsDigest: imagesWords,
	"rd.shell":         func(c Config) any { return c.Shell },
	"rd.break":         func(c Config) any { return c.Break },
	"rd.cfsboot.tpm":   func(c Config) any { return c.TPM },
	"rd.cfsboot.pcr":   func(c Config) any { return c.PCR },
	"rd.cfsboot.etc":   func(c Config) any { return c.Etc },
}

// ParseBootCmdline reads the initrd's command line file and the kernel's:
// the kernel's words come later and win, except for the locked keys the
// initrd sets, where a different value on the kernel command line is an
// error.
func ParseBootCmdline(initrd, kernel []string) (Config, error) {
	c, err := ParseCmdline(append(append([]string{}, initrd...), kernel...))
	if err != nil {
		return c, err
	}
	fromInitrd := DefaultConfig()
	set, err := parseWords(&fromInitrd, initrd)
	if err != nil {
		return c, fmt.Errorf("initrd command line (/%s): %w", layout.CmdlineFile, err)
	}
	if fromInitrd.Images, err = ComposefsArgs(initrd); err != nil && !errors.Is(err, ErrNoComposefsArg) {
		return c, fmt.Errorf("initrd command line (/%s): %w", layout.CmdlineFile, err)
	}
	for key, value := range lockedKeys {
		if set[key] && value(c) != value(fromInitrd) {
			return c, fmt.Errorf("kernel command line: %s: conflicts with %s in the initrd's signed command line (/%s), which the kernel command line cannot override",
				lockedWord(kernel, key), lockedWord(initrd, key), layout.CmdlineFile)
		}
	}
	return c, nil
}

// imagesWords is the list of images as one comparable value: the signed
// initrd naming any image fixes the whole list.
func imagesWords(c Config) any {
	var words []string
	for _, a := range c.Images {
		words = append(words, a.String())
	}
	return strings.Join(words, " ")
}

// lockedWords drops the kernel's words for locked keys the initrd sets, for
// reading a policy from a command line that did not parse.
func lockedWords(initrd, kernel []string) []string {
	words := append([]string{}, initrd...)
	for _, w := range kernel {
		key, _, _ := strings.Cut(w, "=")
		if _, locked := lockedKeys[key]; locked && lastWord(initrd, key) != "" {
			continue
		}
		words = append(words, w)
	}
	return words
}

// lockedWord is the word that set a locked key: for the image keys, the
// last word of either (they lock together).
func lockedWord(words []string, key string) string {
	if key == KeyComposefs || key == KeyComposefsDigest {
		last := ""
		for _, w := range words {
			if k, _, _ := strings.Cut(w, "="); k == KeyComposefs || k == KeyComposefsDigest {
				last = w
			}
		}
		return last
	}
	return lastWord(words, key)
}

func lastWord(words []string, key string) string {
	last := ""
	for _, w := range words {
		if k, _, _ := strings.Cut(w, "="); k == key {
			last = w
		}
	}
	return last
}

// parseWords applies words to c and returns the keys that were set.
func parseWords(c *Config, words []string) (map[string]bool, error) {
	set := map[string]bool{}
	for _, w := range words {
		key, value, hasValue := strings.Cut(w, "=")
		var err error
		switch key {
		case KeyComposefs, KeyComposefsDigest:
			// Read in order by ComposefsArgs; checked here so that a
			// malformed one fails like any other key (its error names it).
			if _, err := ComposefsArgs([]string{w}); err != nil {
				return set, err
			}
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
			secs, err = boundedInt(value, 1, maxTimeoutSeconds)
			c.RootTimeout = time.Duration(secs) * time.Second
		case "rd.shell":
			c.Shell, err = flag(value, hasValue)
		case "rd.break":
			c.Break, err = breakStage(value, hasValue)
		case "panic":
			var secs int
			secs, err = boundedInt(value, -maxPanicSeconds, maxPanicSeconds)
			c.Reboot, c.PanicDelay = secs != 0, max(secs, 0)
		case "rd.cfsboot.store":
			c.Store, err = relativePath(value)
		case "rd.cfsboot.state":
			c.State, err = relativePath(value)
		case "rd.cfsboot.tpm":
			c.TPM, err = oneOf(value, TPMAuto, TPMRequire, TPMOff)
		case "rd.cfsboot.pcr":
			c.PCR, err = boundedInt(value, 0, maxPCR)
		case "rd.cfsboot.measure-phases":
			c.MeasurePhases, err = flag(value, hasValue)
		case "rd.cfsboot.etc":
			c.Etc, err = oneOf(value, EtcPersistent, EtcTransient)
		case "rd.cfsboot.var":
			c.Var, err = oneOf(value, VarDeploy, VarShared)
		default:
			if strings.HasPrefix(key, "rd.cfsboot.") {
				err = fmt.Errorf("unknown cfsboot option")
			}
		}
		if err != nil {
			return set, fmt.Errorf("kernel command line: %s: %w", w, err)
		}
		set[key] = true
	}
	return set, nil
}

// boundedInt parses a decimal integer in [lo, hi].
func boundedInt(v string, lo, hi int) (int, error) {
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n < int64(lo) || n > int64(hi) {
		return 0, fmt.Errorf("want a whole number from %d to %d", lo, hi)
	}
	return int(n), nil
}

func oneOf(v string, allowed ...string) (string, error) {
	for _, a := range allowed {
		if v == a {
			return v, nil
		}
	}
	return v, fmt.Errorf("want %s", strings.Join(allowed, ", "))
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

// breakStage parses rd.break=; a bare rd.break stops before switch_root,
// as in dracut.
func breakStage(v string, hasValue bool) (string, error) {
	if !hasValue {
		return StageSwitch, nil
	}
	if v == StageEarly || v == StageCmdline {
		return "", fmt.Errorf("the init reads its command line after stage %s, so it cannot stop there (stages: %s)", v, strings.Join(breakStages, ", "))
	}
	if _, err := oneOf(v, breakStages...); err != nil {
		return "", fmt.Errorf("unknown stage (stages: %s)", strings.Join(breakStages, ", "))
	}
	return v, nil
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
