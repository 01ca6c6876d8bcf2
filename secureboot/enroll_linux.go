package secureboot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Enroll writes the variables (db, KEK, then PK, as Keys.Variables orders
// them) through efivarfs, the way sbctl enrolls keys: only while the
// firmware is in setup mode, since outside it the firmware would check
// the new PK against the old one.
func Enroll(efivars string, vars []Variable) error {
	setup, err := readFlag(efivars, "SetupMode")
	if err != nil {
		return fmt.Errorf("reading setup mode (booted through UEFI, efivarfs mounted?): %w", err)
	}
	if !setup {
		return errors.New("the firmware is not in setup mode: clear its Secure Boot keys (or use a setup-mode VARS) before enrolling")
	}
	for _, v := range vars {
		path := varPath(efivars, v.Name, v.Vendor)
		if err := clearImmutable(path); err != nil {
			return err
		}
		// efivarfs takes a variable in one write: attributes, then the
		// authenticated payload.
		buf := binary.LittleEndian.AppendUint32(nil, secureBootAttrs)
		buf = append(buf, v.Auth...)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("enrolling %s: %w", v.Name, err)
		}
		_, werr := f.Write(buf)
		if err := errors.Join(werr, f.Close()); err != nil {
			return fmt.Errorf("enrolling %s (%s): %w", v.Name, path, err)
		}
	}
	return nil
}

// fsImmutableFl is FS_IMMUTABLE_FL from linux/fs.h (x/sys/unix lacks it).
const fsImmutableFl = 0x00000010

// clearImmutable drops the immutable flag efivarfs sets on existing
// variables, so that they can be written.
func clearImmutable(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil || flags&fsImmutableFl == 0 {
		return nil // not a file system with flags, or not immutable
	}
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags&^fsImmutableFl)); err != nil {
		return fmt.Errorf("%s: clearing the immutable flag: %w", path, err)
	}
	return nil
}
