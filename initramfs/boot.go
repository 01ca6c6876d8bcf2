package initramfs

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"cfsboot/initramfs/blockdev"
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
// kernel. The Linux implementation is in system_linux.go.
type System interface {
	MountEarly() error
	Cmdline() (kernel, initrd string, err error)
	LoadModules() ([]string, error)
	WaitRoot(ctx context.Context, spec string) (blockdev.Device, error)
	MountRoot(dev blockdev.Device, fstype string, readOnly bool, flags string) error
	// OpenImage opens a regular file without following symlinks.
	OpenImage(path string) (fd int, err error)
	Measure(fd int) (verity.Digest, error)
	MountComposefs(imageFd int, objectsDir string) error
	SetupState(c Config) error
	// FindInit returns the first candidate that is an executable file in
	// the new root (resolved inside it).
	FindInit(candidates []string) (string, error)
	SwitchRoot(init string) error
	HasShell() bool
	Shell() error
	PowerOff()
	Reboot(after time.Duration)
	Log(msg string)
	Critical(msg string)
}

// Measurer extends TPM PCRs at the points of the boot the issue of
// measured boot names; errors are fatal (the measurer applies the TPM
// policy itself and returns nil where a missing TPM is acceptable).
type Measurer interface {
	EnterInitrd() error
	MeasureComposefs(verity.Digest) error
	LeaveInitrd() error
}

// Boot runs the sequence.
type Boot struct {
	Sys System
	// NewMeasurer builds the measurer once the command line is known.
	NewMeasurer func(Config) (Measurer, error)
}

// Failure is a boot failure: the stage and what went wrong there.
type Failure struct {
	Stage string
	Err   error
}

func (f *Failure) Error() string { return fmt.Sprintf("FAILED at stage %s: %v", f.Stage, f.Err) }
func (f *Failure) Unwrap() error { return f.Err }

// Run boots into the verified root. It returns only after a failure has
// been handled (shell, then power off or reboot), with that failure.
func (b *Boot) Run() error {
	words, c, err := b.prepare()
	if err == nil {
		err = b.boot(*c)
	}
	var f *Failure
	if !errors.As(err, &f) {
		f = &Failure{Stage: StageSwitch, Err: err}
	}
	// A command line that failed to parse still says whether a shell or a
	// reboot is wanted.
	policy := lenientPolicy(words)
	if c != nil {
		policy = *c
	}
	b.fail(f, policy)
	return f
}

// prepare mounts the early filesystems and parses the command line; the
// config is nil when the command line did not parse.
func (b *Boot) prepare() ([]string, *Config, error) {
	if err := b.Sys.MountEarly(); err != nil {
		return nil, nil, &Failure{StageEarly, err}
	}
	b.Sys.Log("stage " + StageCmdline)
	kernel, initrd, err := b.Sys.Cmdline()
	if err != nil {
		return nil, nil, &Failure{StageCmdline, err}
	}
	words := append(SplitCmdline(initrd), SplitCmdline(kernel)...)
	c, err := ParseCmdline(words)
	if err != nil {
		return words, nil, &Failure{StageCmdline, err}
	}
	return words, &c, nil
}

func (b *Boot) boot(c Config) error {
	m, err := b.NewMeasurer(c)
	if err != nil {
		return &Failure{StageCmdline, err}
	}
	if err := m.EnterInitrd(); err != nil {
		return &Failure{StageCmdline, fmt.Errorf("TPM: %w", err)}
	}
	stage := func(name string, run func() error) error {
		if c.Break == name {
			b.breakpoint(name)
		}
		b.Sys.Log("stage " + name)
		if err := run(); err != nil {
			return &Failure{name, err}
		}
		return nil
	}
	var imageFd int
	var init string
	steps := []struct {
		name string
		run  func() error
	}{
		{StageModules, func() error {
			mods, err := b.Sys.LoadModules()
			if err == nil && len(mods) > 0 {
				b.Sys.Log(fmt.Sprintf("loaded %d modules", len(mods)))
			}
			return err
		}},
		{StageRoot, func() error { return b.mountRoot(c) }},
		{StageVerify, func() (err error) {
			if imageFd, err = b.verify(c); err != nil {
				return err
			}
			if err := m.MeasureComposefs(c.Digest); err != nil {
				return fmt.Errorf("TPM: %w", err)
			}
			return nil
		}},
		{StageMount, func() error { return b.Sys.MountComposefs(imageFd, path.Join(Sysroot, c.Store, "objects")) }},
		{StageState, func() error { return b.Sys.SetupState(c) }},
		{StageSwitch, func() (err error) {
			candidates := []string{"/sbin/init", "/usr/lib/systemd/systemd"}
			if c.Init != "" {
				candidates = []string{c.Init}
			}
			if init, err = b.Sys.FindInit(candidates); err != nil {
				return err
			}
			if err := m.LeaveInitrd(); err != nil {
				return fmt.Errorf("TPM: %w", err)
			}
			b.Sys.Log("switching to " + init)
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

// verify opens the image the command line names and checks the digest the
// kernel reports for that open file against it.
func (b *Boot) verify(c Config) (int, error) {
	image := path.Join(Sysroot, c.Store, "images", c.Digest.String())
	fd, err := b.Sys.OpenImage(image)
	if err != nil {
		return -1, fmt.Errorf("expected composefs image %s: %w", image, err)
	}
	got, err := b.Sys.Measure(fd)
	switch {
	case errors.Is(err, verity.ErrNotEnabled):
		return -1, fmt.Errorf("expected fs-verity on %s, found a file without it: the image is not protected", image)
	case errors.Is(err, verity.ErrNotSupported):
		return -1, fmt.Errorf("expected fs-verity on %s, found a filesystem without fs-verity support", image)
	case err != nil:
		return -1, fmt.Errorf("measuring %s: %w", image, err)
	case got != c.Digest:
		return -1, fmt.Errorf("expected fs-verity digest %s (composefs=), found %s for %s", c.Digest, got, image)
	}
	b.Sys.Log(fmt.Sprintf("composefs image %s verified", c.Digest))
	return fd, nil
}

func (b *Boot) breakpoint(stage string) {
	if !b.Sys.HasShell() {
		b.Sys.Log(fmt.Sprintf("rd.break=%s: no shell in this initrd (build it with --shell); continuing", stage))
		return
	}
	b.Sys.Log(fmt.Sprintf("rd.break=%s: starting debug shell; exit it to continue", stage))
	if err := b.Sys.Shell(); err != nil {
		b.Sys.Log("debug shell: " + err.Error())
	}
}

// fail reports f and ends the boot: a debug shell only where rd.shell
// allows it, then power off, or reboot after panic= seconds. The verified
// root is never entered after a failure.
func (b *Boot) fail(f *Failure, c Config) {
	b.Sys.Critical(f.Error())
	if c.Shell {
		if b.Sys.HasShell() {
			b.Sys.Critical("starting debug shell")
			if err := b.Sys.Shell(); err != nil {
				b.Sys.Critical("debug shell: " + err.Error())
			}
		} else {
			b.Sys.Critical("rd.shell: no shell in this initrd (build it with --shell)")
		}
	}
	if c.PanicDelay > 0 {
		b.Sys.Critical(fmt.Sprintf("rebooting in %ds", c.PanicDelay))
		b.Sys.Reboot(time.Duration(c.PanicDelay) * time.Second)
		return
	}
	b.Sys.Critical("powering off")
	b.Sys.PowerOff()
}

// lenientPolicy reads only rd.shell and panic= from words.
func lenientPolicy(words []string) Config {
	var c Config
	for _, w := range words {
		k, v, hasValue := strings.Cut(w, "=")
		switch k {
		case "rd.shell":
			if s, err := flag(v, hasValue); err == nil {
				c.Shell = s
			}
		case "panic":
			if n, err := strconv.Atoi(v); err == nil {
				c.PanicDelay = n
			}
		}
	}
	return c
}
