package initramfs

import "cfsboot/internal/efivar"

func (s *Linux) BootCounted() (string, bool) {
	path, err := efivar.Open().LoaderString(efivar.LoaderBootCountPath)
	return path, err == nil && path != ""
}
