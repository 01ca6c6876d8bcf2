// Package efivar reads the UEFI variables cfsboot decides on: whether
// Secure Boot is enabled, whether systemd-stub measured the UKI, and the
// Boot Loader Interface strings systemd-boot leaves (the booted entry, boot
// counting). It mounts efivarfs (which may be a module, so in the init only
// after modules load) and tells "not a UEFI boot" and "absent" apart from
// "cannot read". Small on purpose: PID 1 uses it.
package efivar

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"unicode/utf16"

	"golang.org/x/sys/unix"
)

// Vendor GUIDs of the variables read here.
const (
	GlobalGUID = "8be4df61-93ca-11d2-aa0d-00e098032b8c" // EFI_GLOBAL_VARIABLE: SecureBoot
	LoaderGUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f" // systemd's boot loader interface: StubPcrKernelImage
)

// Kernel paths.
const (
	FirmwareDir = "/sys/firmware/efi"
	VarsDir     = FirmwareDir + "/efivars"
)

// Boot Loader Interface string variables (vendor LoaderGUID).
const (
	LoaderEntrySelected = "LoaderEntrySelected" // id of the booted entry (no boot counter)
	LoaderBootCountPath = "LoaderBootCountPath" // set when the booted entry's tries are counted
)

// ErrNotFound: the firmware has no such variable.
var ErrNotFound = errors.New("no such EFI variable")

// Vars are the variables of one firmware. The zero value is a machine not
// booted through UEFI: it has no variables and no Secure Boot.
type Vars struct {
	Dir string // an efivarfs mount (or a directory laid out like one); "" when not UEFI
	err error  // why Dir cannot be read
}

// Open returns the running firmware's variables, mounting efivarfs on
// VarsDir when it is not mounted yet. A mount failure is kept and returned
// by every read: on a UEFI machine, an unreadable variable is an unknown,
// never an absent one.
func Open() Vars {
	if _, err := os.Stat(FirmwareDir); err != nil {
		return Vars{}
	}
	v := Vars{Dir: VarsDir}
	var st unix.Statfs_t
	if err := unix.Statfs(VarsDir, &st); err == nil && uint32(st.Type) == unix.EFIVARFS_MAGIC {
		return v
	}
	if err := unix.Mount("efivarfs", VarsDir, "efivarfs", unix.MS_NOSUID|unix.MS_NOEXEC|unix.MS_NODEV, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		v.err = fmt.Errorf("UEFI variables: mount efivarfs on %s: %w (is the efivarfs module in the initrd?)", VarsDir, err)
	}
	return v
}

// UEFI reports whether the machine booted through UEFI.
func (v Vars) UEFI() bool { return v.Dir != "" }

// Read returns the value of variable name-guid, without the 4 bytes of
// attributes efivarfs puts in front of it.
func (v Vars) Read(name, guid string) ([]byte, error) {
	if v.Dir == "" {
		return nil, fmt.Errorf("%s: not a UEFI boot: %w", name, ErrNotFound)
	}
	if v.err != nil {
		return nil, v.err
	}
	path := filepath.Join(v.Dir, name+"-"+guid)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("UEFI variable %s: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("UEFI variable %s: %w", path, err)
	}
	if len(data) < 4 {
		return nil, fmt.Errorf("UEFI variable %s: %d bytes, expected 4 bytes of attributes and a value", path, len(data))
	}
	return data[4:], nil
}

// SecureBoot reports whether UEFI Secure Boot is enabled. Not a UEFI
// boot, or no SecureBoot variable: off. A variable that cannot be read is
// an error, which callers treat as "possibly on".
func (v Vars) SecureBoot() (bool, error) {
	data, err := v.Read("SecureBoot", GlobalGUID)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if len(data) != 1 {
		return false, fmt.Errorf("UEFI variable SecureBoot: %d bytes of value, expected 1", len(data))
	}
	return data[0] == 1, nil
}

// StubMeasuredKernel reports whether systemd-stub measured the UKI into
// PCR 11 (it sets StubPcrKernelImage when it did). Not a UEFI boot: no.
func (v Vars) StubMeasuredKernel() (bool, error) {
	_, err := v.Read("StubPcrKernelImage", LoaderGUID)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// LoaderString reads a Boot Loader Interface string variable.
func (v Vars) LoaderString(name string) (string, error) {
	data, err := v.Read(name, LoaderGUID)
	if err != nil {
		return "", err
	}
	s, err := decodeString(data)
	if err != nil {
		return "", fmt.Errorf("UEFI variable %s: %w", name, err)
	}
	return s, nil
}

// decodeString decodes a UTF-16LE string value, usually NUL-terminated.
func decodeString(data []byte) (string, error) {
	if len(data)%2 != 0 {
		return "", fmt.Errorf("%d bytes: not UTF-16LE text", len(data))
	}
	u := make([]uint16, 0, len(data)/2)
	for i := 0; i+1 < len(data); i += 2 {
		c := binary.LittleEndian.Uint16(data[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u)), nil
}
