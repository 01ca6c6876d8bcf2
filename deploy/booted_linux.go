package deploy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ReadBooted reads what the running system says about its boot: the root
// mount's composefs digest and systemd-boot's LoaderEntrySelected. Either
// may be missing (not booted from composefs, or not by systemd-boot).
func ReadBooted() (Booted, error) {
	var b Booted
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return b, fmt.Errorf("booted deployment: %w", err)
	}
	defer f.Close()
	if b.Digest, err = RootDigest(f); err != nil {
		return b, err
	}
	data, err := os.ReadFile(filepath.Join("/sys/firmware/efi/efivars", LoaderEntrySelectedVar))
	if errors.Is(err, fs.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return b, fmt.Errorf("booted entry: %w", err)
	}
	if b.Entry, err = ParseEFIString(data); err != nil {
		return b, fmt.Errorf("booted entry: %s: %w", LoaderEntrySelectedVar, err)
	}
	return b, nil
}
