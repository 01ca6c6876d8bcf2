// Package uki reads Unified Kernel Images: PE files whose sections carry the
// kernel, initrd, command line and the other parts systemd-stub measures.
package uki

import (
	"debug/pe"
	"fmt"
	"io"
	"slices"

	"cfsboot/tpm"
)

// maxZeroFill bounds the zero-filled memory a section may ask for beyond
// its raw data (a kernel's uninitialized data is tens of MiB).
const maxZeroFill = 256 << 20

// MeasuredSections reads the sections systemd-stub measures from a UKI (a PE
// file): each section's VirtualSize bytes as loaded into memory, zero-filled
// beyond its raw data.
func MeasuredSections(r io.ReaderAt) (map[string][]byte, error) {
	f, err := pe.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("UKI: %w", err)
	}
	out := map[string][]byte{}
	for _, s := range f.Sections {
		// The stub uses the first section of a name.
		if _, seen := out[s.Name]; seen || !slices.Contains(tpm.UKISectionOrder, s.Name) {
			continue
		}
		data, err := s.Data()
		if err != nil {
			return nil, fmt.Errorf("UKI section %s: %w", s.Name, err)
		}
		if uint32(len(data)) > s.VirtualSize {
			data = data[:s.VirtualSize]
		} else if s.VirtualSize > uint32(len(data)) {
			if s.VirtualSize-uint32(len(data)) > maxZeroFill {
				return nil, fmt.Errorf("UKI section %s: VirtualSize %d is implausibly larger than its %d bytes", s.Name, s.VirtualSize, len(data))
			}
			data = append(data, make([]byte, int(s.VirtualSize)-len(data))...)
		}
		out[s.Name] = data
	}
	return out, nil
}
