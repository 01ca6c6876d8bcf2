package initramfs

import (
	"context"
	"errors"
	"fmt"
	"path"
	"runtime/debug"
	"strings"
	"time"

	"cfsboot/initramfs/blockdev"
	"cfsboot/initramfs/layout"
	"cfsboot/initramfs/setuproot"
	"cfsboot/verity"
)

// NewRoot is where the verified root is assembled before switch_root;
// Sysroot is where the root device is mounted.
const (
	NewRoot = "/newroot"
	Sysroot = "/sysroot"
)

// System is what the boot sequence does to the machine, behind an
// interface so the sequence and its failure policy are testable without a
// kernel. The Linux implementation is Linux (system_*_linux.go).
type System interface {
	MountEarly() error
	Cmdline() (kernel, initrd string, err error)
	LoadModules() error
	WaitRoot(ctx context.Context, spec string) (blockdev.Device, error)
	// MountRoot mounts the root device nosuid,nodev at Sysroot.
	MountRoot(dev blockdev.Device, fstype string, readOnly bool, flags string) error
	// OpenImage opens images/<name> in the store (a directory below
	// Sysroot) for reading: a regular file, or a symlink that stays inside
	// the store to one (composefs-rs links images/<hex> to
	// ../objects/XX/<rest>); never a FIFO or device. An error wrapping
	// ErrImageAbsent means the store has no such name, and nothing else
	// does.
	OpenImage(store, name string) (fd int, err error)
	// Measure returns the fs-verity digest the kernel holds for the file.
	Measure(fd int) (verity.Sum, error)
	// MountComposefs mounts the image at NewRoot over the store's objects.
	MountComposefs(img Image, store string, transientRoot bool) error
	// SetupState mounts /etc and /var of the new root from the state of
	// the image named deployment, and the root device at /sysroot in it.
	SetupState(c Config, deployment string) error
	// SetupRootConf returns the initrd's composefs-setup-root
	// configuration file (nil when it has none).
	SetupRootConf() ([]byte, error)
	// AllowInsecure reports whether the initrd was built to allow
	// command line entries with the '?' (verity optional) prefix.
	AllowInsecure() bool
	// FindInit returns the first candidate that is an executable file in
	// the new root (resolved inside it).
	FindInit(candidates []string) (string, error)
	SwitchRoot(init string) error
	// HasShell reports whether the initrd carries a debug shell, and
	// whether it was built to allow it under UEFI Secure Boot.
	HasShell() (present, allowedUnderSecureBoot bool)
	// SecureBoot reports whether UEFI Secure Boot is enabled.
	SecureBoot() (bool, error)
	// BootCounted returns systemd-boot's LoaderBootCountPath when the
	// booted entry's tries are being counted.
	BootCounted() (path string, ok bool)
	Shell() error
	PowerOff()
	Reboot(after time.Duration)
	Log(msg string)
	// Critical reports failures and refusals: shown even with quiet and
	// logged by the kernel at a level that shows.
	Critical(msg string)
}

// Measurer extends TPM PCRs at the points of the boot the issue of
// measured boot names; errors are fatal (the measurer applies the TPM
// policy itself and returns nil where a missing TPM is acceptable).
type Measurer interface {
	EnterInitrd() error
	// MeasureComposefs measures the booted image; verified is false only
	// for a '?' entry whose image had no fs-verity.
	MeasureComposefs(d verity.Sum, verified bool) error
	// DebugShell measures that a debug shell starts; an error means the
	// shell must not start.
	DebugShell() error
	LeaveInitrd() error
	Close() error
}

// Boot runs the sequence.
type Boot struct {
	Sys System
	// NewMeasurer opens the TPM once the command line is known.
	NewMeasurer func(Config) (Measurer, error)

	stage    string   // the stage running, for failures that have no stage (panics)
	measurer Measurer // nil until the TPM stage (or a debug shell) opened it
}

// Image is the composefs image the verify stage chose.
type Image struct {
	Arg ComposefsArg
	Fd  int
	// Verified: the kernel's fs-verity digest of the image equals the
	// requested one, and the overlay requires fs-verity of every object.
	// False only for a '?' entry whose image has no fs-verity (allowed by
	// the initrd's --allow-insecure).
	Verified bool
}

// Name is the image's name in images/ and in state/deploy/.
func (i Image) Name() string { return i.Arg.Digest.String() }

// ErrImageAbsent: the store has no image of that name.
var ErrImageAbsent = errors.New("not in the store")

// Failure is a boot failure: the stage and what went wrong there.
type Failure struct {
	Stage string
	Err   error
}

func (f *Failure) Error() string { return fmt.Sprintf("FAILED at stage %s: %v", f.Stage, f.Err) }
func (f *Failure) Unwrap() error { return f.Err }

// Run boots into the verified root. It returns only after a failure has
// been handled (shell, then power off or reboot), with that failure. A
// panic anywhere in the sequence is such a failure: PID 1 must not die.
func (b *Boot) Run() error {
	var initrdWords, kernelWords []string
	var c *Config
	err := b.guard(func() (err error) {
		initrdWords, kernelWords, c, err = b.prepare()
		if err == nil {
			err = b.boot(*c)
		}
		return err
	})
	var f *Failure
	if !errors.As(err, &f) {
		f = &Failure{Stage: b.stage, Err: err}
	}
	// A command line that failed to parse still says whether a shell or a
	// reboot is wanted.
	policy := lenientPolicy(lockedWords(initrdWords, kernelWords))
	if c != nil {
		policy = *c
	}
	if err := b.guard(func() error { b.fail(f, policy); return nil }); err != nil {
		b.Sys.Critical(err.Error())
		b.Sys.PowerOff()
	}
	return f
}

// guard runs run and turns a panic in it into a Failure at the current
// stage, with the stack in the kernel log.
func (b *Boot) guard(run func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			b.Sys.Log(fmt.Sprintf("panic: %v\n%s", r, debug.Stack()))
			err = &Failure{Stage: b.stage, Err: fmt.Errorf("internal error: %v", r)}
		}
	}()
	return run()
}

// prepare mounts the early filesystems and parses the command line; the
// config is nil when the command line did not parse.
func (b *Boot) prepare() (initrd, kernel []string, c *Config, err error) {
	b.stage = StageEarly
	start := monotonic()
	if err := b.Sys.MountEarly(); err != nil {
		return nil, nil, nil, &Failure{StageEarly, err}
	}
	b.Sys.Log(stageTime(StageEarly, start, monotonic())) // logs need the early mounts
	b.stage = StageCmdline
	b.Sys.Log("stage " + StageCmdline)
	kernelLine, initrdLine, err := b.Sys.Cmdline()
	if err != nil {
		return nil, nil, nil, &Failure{StageCmdline, err}
	}
	initrd, kernel = SplitCmdline(initrdLine), SplitCmdline(kernelLine)
	config, err := ParseBootCmdline(initrd, kernel)
	if err == nil {
		err = b.checkInsecure(config)
	}
	if err != nil {
		return initrd, kernel, nil, &Failure{StageCmdline, err}
	}
	conf, err := b.Sys.SetupRootConf()
	if err == nil {
		config.Setup, err = setuproot.Parse(conf)
	}
	if err != nil {
		return initrd, kernel, &config, &Failure{StageCmdline, fmt.Errorf("/%s: %w", layout.SetupRootConf, err)}
	}
	return initrd, kernel, &config, nil
}

// checkInsecure refuses '?' entries unless the initrd allows them.
func (b *Boot) checkInsecure(c Config) error {
	for _, a := range c.Images {
		if a.Optional && !b.Sys.AllowInsecure() {
			return fmt.Errorf("kernel command line: %s: the '?' prefix makes fs-verity optional, and this initrd was not built with --allow-insecure", a)
		}
	}
	return nil
}

func (b *Boot) boot(c Config) error {
	var stageStart time.Duration
	stage := func(name string, run func() error) error {
		if c.Break == name {
			b.breakpoint(c, name)
		}
		b.stage = name
		b.Sys.Log("stage " + name)
		stageStart = monotonic()
		if err := run(); err != nil {
			return &Failure{name, err}
		}
		b.Sys.Log(stageTime(name, stageStart, monotonic()))
		return nil
	}
	var image Image
	var init string
	steps := []struct {
		name string
		run  func() error
	}{
		// The loader logs each module it loads, and why.
		{StageModules, b.Sys.LoadModules},
		// After the modules: the TPM driver and efivarfs may be among them.
		{StageTPM, func() error {
			m, err := b.openMeasurer(c)
			if err != nil {
				return err
			}
			if err := m.EnterInitrd(); err != nil {
				return fmt.Errorf("TPM: %w", err)
			}
			return nil
		}},
		{StageRoot, func() error { return b.mountRoot(c) }},
		{StageVerify, func() (err error) {
			if image, err = b.verify(c); err != nil {
				return err
			}
			if err := b.measurer.MeasureComposefs(image.Arg.Digest, image.Verified); err != nil {
				return fmt.Errorf("TPM: %w", err)
			}
			return nil
		}},
		{StageMount, func() error { return b.Sys.MountComposefs(image, c.Store, c.Setup.RootTransient) }},
		{StageState, func() error { return b.Sys.SetupState(c, image.Name()) }},
		{StageSwitch, func() (err error) {
			candidates := []string{"/sbin/init", "/usr/lib/systemd/systemd"}
			if c.Init != "" {
				candidates = []string{c.Init}
			}
			if init, err = b.Sys.FindInit(candidates); err != nil {
				return err
			}
			if err := b.measurer.LeaveInitrd(); err != nil {
				return fmt.Errorf("TPM: %w", err)
			}
			b.Sys.Log("switching to " + init)
			// The last line before the exec (that never returns).
			b.Sys.Log(stageTime(StageSwitch, stageStart, monotonic()))
			return b.Sys.SwitchRoot(init)
		}},
	}
	for _, s := range steps {
		if err := stage(s.name, s.run); err != nil {
			return err
		}
	}
	return nil
}

// openMeasurer opens the TPM once; a debug shell before the TPM stage
// opens it early.
func (b *Boot) openMeasurer(c Config) (Measurer, error) {
	if b.measurer != nil {
		return b.measurer, nil
	}
	m, err := b.NewMeasurer(c)
	if err != nil {
		return nil, err
	}
	b.measurer = m
	return m, nil
}
func (b *Boot) mountRoot(c Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.RootTimeout)
	defer cancel()
	dev, err := b.Sys.WaitRoot(ctx, c.Root)
	switch {
	case errors.Is(err, blockdev.ErrAmbiguous):
		return fmt.Errorf("root device: %w", err)
	case err != nil:
		return fmt.Errorf("waited %s for root device: %w", c.RootTimeout, err)
	}
	fstype := c.RootFSType
	if fstype == "" {
		fstype = dev.FSType
	}
	if fstype == "" {
		return fmt.Errorf("root device %s: unknown filesystem type; set rootfstype=", dev.Path)
	}
	b.Sys.Log(fmt.Sprintf("root device %s", dev))
	return b.Sys.MountRoot(dev, fstype, c.ReadOnly, c.RootFlags)
}

// verify opens the first image of the command line's list that the store
// has, and checks the digest the kernel reports for that open file against
// the requested one (algorithm and digest). Only an absent image moves on
// to the next entry: a present image that fails any check fails the boot.
func (b *Boot) verify(c Config) (Image, error) {
	var tried []string
	for _, a := range c.Images {
		image := path.Join(Sysroot, c.Store, "images", a.Digest.String())
		fd, err := b.Sys.OpenImage(c.Store, a.Digest.String())
		if errors.Is(err, ErrImageAbsent) {
			b.Sys.Log(fmt.Sprintf("composefs image %s (%s) is not in the store; trying the next", a.Digest, a))
			tried = append(tried, a.String())
			continue
		}
		if err != nil {
			return Image{}, fmt.Errorf("expected composefs image %s (%s): %w", image, a, err)
		}
		got, err := b.Sys.Measure(fd)
		switch {
		case a.Optional && (errors.Is(err, verity.ErrNotEnabled) || errors.Is(err, verity.ErrNotSupported)):
			b.Sys.Critical(fmt.Sprintf("composefs image %s NOT verified: it has no fs-verity and %s makes it optional (allowed by this initrd's --allow-insecure); measured as composefs-insecure", a.Digest, a))
			return Image{Arg: a, Fd: fd}, nil
		case errors.Is(err, verity.ErrNotEnabled):
			return Image{}, fmt.Errorf("expected fs-verity on %s, found a file without it: the image is not protected", image)
		case errors.Is(err, verity.ErrNotSupported):
			return Image{}, fmt.Errorf("expected fs-verity on %s, found a filesystem without fs-verity support", image)
		case err != nil:
			return Image{}, fmt.Errorf("measuring %s: %w", image, err)
		case got != a.Digest:
			return Image{}, fmt.Errorf("expected fs-verity digest %s:%s (%s), found %s:%s for %s", a.Digest.Algorithm(), a.Digest, a, got.Algorithm(), got, image)
		}
		b.Sys.Log(fmt.Sprintf("composefs image %s verified", a.Digest))
		return Image{Arg: a, Fd: fd, Verified: true}, nil
	}
	return Image{}, fmt.Errorf("expected one of the composefs images the command line names in %s, found none of them (tried %s)", path.Join(Sysroot, c.Store, "images"), strings.Join(tried, ", "))
}

// breakpoint runs the debug shell rd.break asked for; the boot goes on
// afterwards, measured as a debugged boot.
func (b *Boot) breakpoint(c Config, stage string) {
	why := "rd.break=" + stage
	if b.shell(c, why, why+": starting debug shell; exit it to continue") {
		b.Sys.Critical(fmt.Sprintf("rd.break=%s: continuing the boot; it is measured as debugged (%s)", stage, debugShellEvent))
	}
}

// debugShellEvent is what the measurer extends before a shell (tpm.DebugShellEvent).
const debugShellEvent = "debug-shell"

// shell starts the debug shell if the initrd has one and policy allows
// it: under UEFI Secure Boot only with the initrd's explicit opt-in, and
// only once the TPM recorded that a shell ran. It reports whether a shell
// ran.
func (b *Boot) shell(c Config, why, starting string) bool {
	present, allowedUnderSecureBoot := b.Sys.HasShell()
	if !present {
		b.Sys.Critical(why + ": no shell in this initrd (build it with --shell)")
		return false
	}
	if !allowedUnderSecureBoot {
		on, err := b.Sys.SecureBoot()
		if err != nil {
			b.Sys.Critical(fmt.Sprintf("%s: refusing the debug shell: cannot tell whether UEFI Secure Boot is enabled: %v", why, err))
			return false
		}
		if on {
			b.Sys.Critical(why + ": refusing the debug shell: UEFI Secure Boot is enabled and this initrd was not built with --allow-shell-under-secure-boot")
			return false
		}
	}
	b.Sys.Critical(fmt.Sprintf("%s: measuring %s into PCR 11 and PCR %d before the shell starts", why, debugShellEvent, c.PCR))
	m, err := b.openMeasurer(c)
	if err == nil {
		err = m.DebugShell()
	}
	if err != nil {
		b.Sys.Critical(fmt.Sprintf("%s: refusing the debug shell: it cannot be measured: %v", why, err))
		return false
	}
	b.Sys.Critical(starting)
	if err := b.Sys.Shell(); err != nil {
		b.Sys.Critical("debug shell: " + err.Error())
	}
	return true
}

// countedRebootDelay is how long a failed boot of an entry whose tries
// systemd-boot counts waits before rebooting when panic= does not say.
const countedRebootDelay = 10

// fail reports f and ends the boot: a debug shell only where rd.shell
// allows it, then power off, or reboot after panic= seconds. When
// systemd-boot counts the tries of the booted entry, it reboots (after
// panic= or 10 s) so that the boot loader falls back by itself once no
// tries are left. The verified root is never entered after a failure.
func (b *Boot) fail(f *Failure, c Config) {
	b.Sys.Critical(f.Error())
	if c.Shell {
		b.shell(c, "rd.shell", "starting debug shell")
	}
	if b.measurer != nil {
		b.measurer.Close()
	}
	if counted, ok := b.Sys.BootCounted(); ok {
		delay := countedRebootDelay
		if c.Reboot {
			delay = c.PanicDelay
		}
		b.Sys.Critical(fmt.Sprintf("rebooting in %ds: systemd-boot counts this try (%s) and falls back to the previous deployment when none are left", delay, counted))
		b.Sys.Reboot(time.Duration(delay) * time.Second)
		return
	}
	if c.Reboot {
		b.Sys.Critical(fmt.Sprintf("rebooting in %ds", c.PanicDelay))
		b.Sys.Reboot(time.Duration(c.PanicDelay) * time.Second)
		return
	}
	b.Sys.Critical("powering off")
	b.Sys.PowerOff()
}

// lenientPolicy reads, from a command line that did not parse, the keys
// the failure path needs, each where its value is valid.
func lenientPolicy(words []string) Config {
	c := DefaultConfig()
	for _, w := range words {
		var k Config = c
		if _, err := parseWords(&k, []string{w}); err != nil {
			continue
		}
		c.Shell, c.Reboot, c.PanicDelay, c.TPM, c.PCR = k.Shell, k.Reboot, k.PanicDelay, k.TPM, k.PCR
	}
	return c
}

// Halt blocks forever. PID 1 must not exit, and a bare select{} would make
// the runtime abort with "all goroutines are asleep" when nothing else runs.
func Halt() {
	for {
		time.Sleep(time.Hour)
	}
}
