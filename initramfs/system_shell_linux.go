package initramfs

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
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
