package initramfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"cfsboot/initramfs/layout"
	"cfsboot/internal/efivar"
)

func (s *Linux) HasShell() (present, allowedUnderSecureBoot bool) {
	if _, err := os.Stat("/" + layout.ShellPath); err != nil {
		return false, false
	}
	_, err := os.Stat("/" + layout.ShellUnderSecureBoot)
	return true, !errors.Is(err, fs.ErrNotExist)
}

func (s *Linux) SecureBoot() (bool, error) { return efivar.Open().SecureBoot() }

// Shell runs an interactive shell on the console as a new session with the
// console as its controlling terminal, and waits for it to exit. (With
// syscall.ForkExec rather than os/exec, which alone would add a twentieth
// to the init's size.)
func (s *Linux) Shell() error {
	console, err := os.OpenFile("/dev/console", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer console.Close()
	fd := console.Fd()
	shell := "/" + layout.ShellPath
	pid, err := syscall.ForkExec(shell, []string{shell, "-i"}, &syscall.ProcAttr{
		Env:   []string{"PATH=/bin:/sbin:/usr/bin:/usr/sbin", "TERM=linux", "PS1=cfsboot# ", "HOME=/"},
		Files: []uintptr{fd, fd, fd},
		Sys:   &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0},
	})
	if err != nil {
		return fmt.Errorf("%s: %w", shell, err)
	}
	for {
		var status syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &status, 0, nil); err != syscall.EINTR {
			return err
		}
	}
}
