package secureboot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// EfivarsDir is where Linux mounts efivarfs.
const EfivarsDir = "/sys/firmware/efi/efivars"

// varPath names a variable's file in efivarfs: NAME-VENDORGUID.
func varPath(efivars, name string, vendor GUID) string {
	return filepath.Join(efivars, name+"-"+vendor.String())
}

// readVar returns a variable's data (without the 4 attribute bytes
// efivarfs puts first); a missing variable is fs.ErrNotExist.
func readVar(efivars, name string, vendor GUID) ([]byte, error) {
	data, err := os.ReadFile(varPath(efivars, name, vendor))
	if err != nil {
		return nil, err
	}
	if len(data) < 4 {
		return nil, fmt.Errorf("%s: %d bytes, no attributes", varPath(efivars, name, vendor), len(data))
	}
	return data[4:], nil
}

// readFlag reads a one-byte boolean variable (SetupMode, SecureBoot).
func readFlag(efivars, name string) (bool, error) {
	data, err := readVar(efivars, name, GlobalVariable)
	if err != nil {
		return false, err
	}
	if len(data) != 1 || data[0] > 1 {
		return false, fmt.Errorf("%s: value %x, want one byte 0 or 1", varPath(efivars, name, GlobalVariable), data)
	}
	return data[0] == 1, nil
}

// Status is the firmware's Secure Boot state.
type Status struct {
	SetupMode  bool           `json:"setup_mode"`
	SecureBoot bool           `json:"secure_boot"`
	PK         []EnrolledCert `json:"-"`
	KEK        []EnrolledCert `json:"-"`
	DB         []EnrolledCert `json:"-"`
}

// ReadStatus reads setup mode, Secure Boot and the certificates enrolled
// in PK, KEK and db from efivarfs (missing databases are empty).
func ReadStatus(efivars string) (*Status, error) {
	var s Status
	var err error
	if s.SetupMode, err = readFlag(efivars, "SetupMode"); err != nil {
		return nil, fmt.Errorf("reading setup mode (booted through UEFI, efivarfs mounted?): %w", err)
	}
	if s.SecureBoot, err = readFlag(efivars, "SecureBoot"); err != nil {
		return nil, err
	}
	for _, db := range []struct {
		name   string
		vendor GUID
		into   *[]EnrolledCert
	}{{"PK", GlobalVariable, &s.PK}, {"KEK", GlobalVariable, &s.KEK}, {"db", ImageSecurityDatabase, &s.DB}} {
		data, err := readVar(efivars, db.name, db.vendor)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if *db.into, err = ParseSignatureLists(data); err != nil {
			return nil, fmt.Errorf("%s: %w", varPath(efivars, db.name, db.vendor), err)
		}
	}
	return &s, nil
}
