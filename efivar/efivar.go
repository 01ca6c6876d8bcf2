// Package efivar reads the string variables of the Boot Loader Interface
// that systemd-boot leaves for the booted system (LoaderEntrySelected,
// LoaderBootCountPath, ...). Small on purpose: PID 1 uses it too.
package efivar

import (
	"encoding/binary"
	"fmt"
	"unicode/utf16"
)

// LoaderGUID is the vendor GUID of the Boot Loader Interface variables.
const LoaderGUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"

// Names of the variables cfsboot reads.
const (
	LoaderEntrySelected = "LoaderEntrySelected" // id of the booted entry (no counter)
	LoaderBootCountPath = "LoaderBootCountPath" // set when the booted entry is counted
)

// ParseString decodes an efivarfs file holding a string variable: four
// bytes of attributes, then UTF-16LE text, usually NUL-terminated.
func ParseString(data []byte) (string, error) {
	if len(data) < 4 || (len(data)-4)%2 != 0 {
		return "", fmt.Errorf("efi variable of %d bytes: want 4 bytes of attributes and UTF-16LE text", len(data))
	}
	u := make([]uint16, 0, (len(data)-4)/2)
	for i := 4; i+1 < len(data); i += 2 {
		c := binary.LittleEndian.Uint16(data[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u)), nil
}
