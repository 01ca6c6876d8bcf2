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

// MeasuredSections reads the sections systemd-stub measures from a UKI (a PE
// file): each section's first VirtualSize bytes.
func MeasuredSections(r io.ReaderAt) (map[string][]byte, error) {
	f, err := pe.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("UKI: %w", err)
	}
	out := map[string][]byte{}
	for _, s := range f.Sections {
		if !slices.Contains(tpm.UKISectionOrder, s.Name) {
			continue
		}
		data, err := s.Data()
		if err != nil {
			return nil, fmt.Errorf("UKI section %s: %w", s.Name, err)
		}
		if uint32(len(data)) > s.VirtualSize {
			data = data[:s.VirtualSize]
		}
		out[s.Name] = data
	}
	return out, nil
}
