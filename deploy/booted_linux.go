package deploy

import (
	"errors"
	"fmt"
	"os"

	"cfsboot/internal/efivar"
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
	b.Entry, err = efivar.Open().LoaderString(efivar.LoaderEntrySelected)
	if errors.Is(err, efivar.ErrNotFound) {
		return b, nil
	}
	return b, err
}
