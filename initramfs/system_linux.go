package initramfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"cfsboot/initramfs/blockdev"
	"cfsboot/initramfs/layout"
	"cfsboot/initramfs/modload"
	"cfsboot/mount"
)

// Linux is the real System of PID 1 in the initrd. Its methods live one
// concern a file: logging (system_log_linux.go), the root device and image
// (system_root_linux.go), state (system_state_linux.go), the debug shell
// (system_shell_linux.go); this file has the early mounts, the command
// line, modules, switch_root and power.
type Linux struct {
	kmsg     *os.File // progress, at debug level
	kmsgCrit *os.File // failures: the kernel rate-limits each open file, so they get their own
	quiet    bool     // "quiet" on the command line: progress goes to the kernel log only
	modules  *modload.Loader
}

// Paths in the initramfs (below /run, which moves into the new root).
const (
	imageMount = "/run/cfsboot/image"
	volatile   = "/run/cfsboot/volatile"
)

func (s *Linux) MountEarly() error {
	for _, m := range []struct {
		fstype, target string
		flags          uintptr
		data           string
	}{
		{"proc", "/proc", unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV, ""},
		{"sysfs", "/sys", unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV, ""},
		{"devtmpfs", "/dev", unix.MS_NOSUID, "mode=0755"},
		{"tmpfs", "/run", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	} {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return err
		}
		err := unix.Mount(m.fstype, m.target, m.fstype, m.flags, m.data)
		if err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
		}
	}
	s.openKmsg()
	if cmdline, err := os.ReadFile("/proc/cmdline"); err == nil {
		for _, w := range SplitCmdline(string(cmdline)) {
			s.quiet = s.quiet || w == "quiet"
		}
	}
	return nil
}

func (s *Linux) Cmdline() (string, string, error) {
	kernel, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return "", "", err
	}
	initrd, err := os.ReadFile("/" + layout.CmdlineFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", "", err
	}
	return string(kernel), string(initrd), nil
}

func (s *Linux) SetupRootConf() ([]byte, error) {
	data, err := os.ReadFile("/" + layout.SetupRootConf)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

func (s *Linux) AllowInsecure() bool {
	_, err := os.Lstat("/" + layout.AllowInsecure)
	return err == nil
}

// LoadModules loads the modules the machine needs (modload.Loader); the
// root device wait loads more as devices appear.
func (s *Linux) LoadModules() error {
	l, err := modload.Open("/"+layout.ModulesDir, s.Log)
	if err != nil {
		return err
	}
	s.modules = l
	return l.Start()
}

// moduleGrace is how long the root device may take to appear with only
// the drivers the machine's devices asked for; then every module of the
// initrd loads, as a fail-safe against a driver no modalias names.
const moduleGrace = time.Second

func (s *Linux) WaitRoot(ctx context.Context, spec string) (blockdev.Device, error) {
	failSafe := false
	return blockdev.WaitLoading(ctx, spec, func(waited time.Duration) error {
		if s.modules == nil {
			return nil
		}
		if waited >= moduleGrace && !failSafe {
			failSafe = true
			return s.modules.LoadRest("root device " + spec + " not found within " + moduleGrace.String())
		}
		_, err := s.modules.Rescan()
		return err
	})
}

func (s *Linux) FindInit(candidates []string) (string, error) {
	root, err := unix.Open(NewRoot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(root)
	for _, c := range candidates {
		// Resolve inside the new root, as the kernel will after chroot.
		fd, err := unix.Openat2(root, c, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
		if err != nil {
			continue
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		unix.Close(fd)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Mode&0o111 != 0 {
			return c, nil
		}
	}
	return "", fmt.Errorf("expected an init program at %s in the verified root, found none", strings.Join(candidates, " or "))
}

func (s *Linux) SwitchRoot(init string) error {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=linux", "HOME=/"}
	stubEnv, notes := handOffStub("/.extra", "/run")
	for _, n := range notes {
		s.Log("systemd-stub hand-off: " + n)
	}
	return mount.SwitchRoot(NewRoot, init, []string{init}, append(env, stubEnv...))
}

func (s *Linux) PowerOff() {
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	Halt()
}

func (s *Linux) Reboot(after time.Duration) {
	time.Sleep(after)
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	Halt()
}
