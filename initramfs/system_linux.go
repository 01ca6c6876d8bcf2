package initramfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"cfsboot/initramfs/blockdev"
	"cfsboot/initramfs/layout"
	"cfsboot/initramfs/modload"
	"cfsboot/mount"
	"cfsboot/verity"
)

// Linux is the real System of PID 1 in the initrd.
type Linux struct {
	kmsg  *os.File
	quiet bool // "quiet" on the command line: progress goes to the kernel log only
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
	if f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
		s.kmsg = f
	}
	if cmdline, err := os.ReadFile("/proc/cmdline"); err == nil {
		for _, w := range SplitCmdline(string(cmdline)) {
			s.quiet = s.quiet || w == "quiet"
		}
	}
	return nil
}

// log writes one line to the console (PID 1's stdout) unless quiet, and a
// copy to the kernel log. The kernel rate-limits /dev/kmsg writers, so the
// console copy is the one a person can rely on; the kernel log copy is at
// debug level so the kernel does not print it on the console a second time.
func (s *Linux) log(msg string, quiet bool) {
	if !quiet {
		fmt.Fprintf(os.Stdout, "cfsboot: %s\n", msg)
	}
	if s.kmsg != nil {
		fmt.Fprintf(s.kmsg, "<7>cfsboot: %s\n", msg)
	}
}

// Log reports progress.
func (s *Linux) Log(msg string) { s.log(msg, s.quiet) }

// Critical reports failures, even with quiet.
func (s *Linux) Critical(msg string) { s.log(msg, false) }

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

func (s *Linux) LoadModules() ([]string, error) { return modload.LoadAll("/" + layout.ModulesDir) }

func (s *Linux) WaitRoot(ctx context.Context, spec string) (blockdev.Device, error) {
	return blockdev.Wait(ctx, spec)
}

func (s *Linux) MountRoot(dev blockdev.Device, fstype string, readOnly bool, flags string) error {
	if err := os.MkdirAll(Sysroot, 0o755); err != nil {
		return err
	}
	var mflags uintptr
	if readOnly {
		mflags |= unix.MS_RDONLY
	}
	if err := unix.Mount(dev.Path, Sysroot, fstype, mflags, flags); err != nil {
		return fmt.Errorf("mount %s (%s, options %q) on %s: %w", dev.Path, fstype, flags, Sysroot, err)
	}
	return nil
}

func (s *Linux) OpenImage(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return -1, errors.New("found no such file")
		}
		if errors.Is(err, unix.ELOOP) {
			return -1, errors.New("found a symlink, which is not followed")
		}
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, fmt.Errorf("found a file of type %o, not a regular file", st.Mode&unix.S_IFMT)
	}
	return fd, nil
}

func (s *Linux) Measure(fd int) (verity.Digest, error) { return verity.Measure(fd) }

func (s *Linux) MountComposefs(imageFd int, objectsDir string) error {
	for _, d := range []string{imageMount, NewRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := mount.EROFS(imageFd, imageMount); err != nil {
		if errors.Is(err, unix.EIO) {
			return fmt.Errorf("the verified image failed fs-verity checks while being read (its blocks changed on disk after it was sealed): %w", err)
		}
		return err
	}
	ov := mount.Overlay{Lower: []string{imageMount}, Data: []string{objectsDir}, Composefs: true, Verity: mount.VerityRequire}
	return ov.Mount(NewRoot)
}

// SetupState gives the read-only root a writable /etc (an overlay whose
// upper layer is kept per image under the state directory, so changes
// survive reboots of the same image) and a persistent /var, and leaves the
// root device reachable at /sysroot. With ro the root device stays
// read-only and both live in memory.
func (s *Linux) SetupState(c Config) error {
	base := filepath.Join(Sysroot, c.State)
	if c.ReadOnly {
		if err := os.MkdirAll(volatile, 0o755); err != nil {
			return err
		}
		if err := unix.Mount("tmpfs", volatile, "tmpfs", 0, "mode=0755"); err != nil {
			return fmt.Errorf("volatile state: %w", err)
		}
		base = volatile
		s.Log("root device is read-only (ro): /etc and /var changes are not kept")
	}
	etc := filepath.Join(base, "deploy", c.Digest.String(), "etc")
	for _, d := range []string{etc + "/upper", etc + "/work", base + "/var"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("state directory: %w", err)
		}
	}
	for _, d := range []string{"etc", "var"} {
		if st, err := os.Stat(filepath.Join(NewRoot, d)); err != nil || !st.IsDir() {
			return fmt.Errorf("expected a /%s directory in the image to mount state on, found none", d)
		}
	}
	ov := mount.Overlay{Lower: []string{NewRoot + "/etc"}, Upper: etc + "/upper", Work: etc + "/work"}
	if err := ov.Mount(NewRoot + "/etc"); err != nil {
		return fmt.Errorf("/etc: %w", err)
	}
	if err := mount.Bind(base+"/var", NewRoot+"/var"); err != nil {
		return fmt.Errorf("/var: %w", err)
	}
	target := NewRoot + Sysroot
	if st, err := os.Stat(target); err != nil || !st.IsDir() {
		target = "/run/cfsboot/sysroot" // moves along with /run
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
	}
	return mount.Move(Sysroot, target)
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
	return mount.SwitchRoot(NewRoot, init, []string{init}, env)
}

func (s *Linux) HasShell() bool {
	_, err := os.Stat("/" + layout.ShellPath)
	return err == nil
}

// Shell runs an interactive shell on the console as a new session with the
// console as its controlling terminal, and waits for it to exit.
func (s *Linux) Shell() error {
	console, err := os.OpenFile("/dev/console", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer console.Close()
	cmd := exec.Command("/"+layout.ShellPath, "-i")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = console, console, console
	cmd.Env = []string{"PATH=/bin:/sbin:/usr/bin:/usr/sbin", "TERM=linux", "PS1=cfsboot# ", "HOME=/"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	return cmd.Run()
}

func (s *Linux) PowerOff() {
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	halt()
}

func (s *Linux) Reboot(after time.Duration) {
	time.Sleep(after)
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	halt()
}

// halt never returns: PID 1 must not exit.
func halt() {
	for {
		time.Sleep(time.Hour)
	}
}
